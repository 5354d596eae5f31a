"""Publishing a finished study, apart from the science: the deterministic archive, its
provenance, the Zenodo deposit and the README's generated lines.

- :mod:`~deeplinear.publish.archive`: build and verify the tarball, the command line;
- :mod:`~deeplinear.publish.provenance`: git commit, package versions, platform, lock,
  resolved config;
- :mod:`~deeplinear.publish.zenodo`: the deposit client and published records;
- :mod:`~deeplinear.publish.readme`: the README's generated blocks and deposit lines;
- :mod:`~deeplinear.publish.files`: the one file-hashing and the one text-writing helper.

    python -m deeplinear.publish <build|verify|provenance|lock|config|deposit> ...

Everything but ``readme``'s claims and figures blocks needs only the standard library, so a
reader verifies an unpacked archive with
``PYTHONPATH=<unpacked>/src python3 -m deeplinear.publish verify ARCHIVE ...``.
This file imports nothing.
"""
