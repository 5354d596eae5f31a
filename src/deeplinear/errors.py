"""The one exception type for bad input (a ``ValueError`` subclass), and the command that
rebuilds a damaged output, which error messages quote."""

import os
import shlex

#: The workflow (``common.smk``) sets this to its ``--configfile`` arguments, so that the
#: command a message quotes rebuilds the file under the config that made it.
CONFIGFILES_VARIABLE = "DEEPLINEAR_CONFIGFILES"


class InputError(ValueError):
    """Invalid data, shapes, widths or parameters; the message names the problem."""


def rebuild_command(path: str | os.PathLike) -> str:
    """``snakemake --force PATH [--configfile=FILE ...]``: the command that rebuilds ``path``
    with the config files of the run (:data:`CONFIGFILES_VARIABLE`; none for the default)."""
    files = shlex.split(os.environ.get(CONFIGFILES_VARIABLE, ""))
    return shlex.join(["snakemake", "--force", str(path), *(f"--configfile={f}" for f in files)])
