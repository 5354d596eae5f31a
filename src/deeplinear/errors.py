"""The one exception type for bad input (a ``ValueError`` subclass)."""


class InputError(ValueError):
    """Invalid data, shapes, widths or parameters; the message names the problem."""
