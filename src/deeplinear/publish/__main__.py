"""``python -m deeplinear.publish <build|verify|provenance|lock|config|deposit> ...``: the
command line of :mod:`deeplinear.publish.archive` (standard library only)."""

import sys

from deeplinear.publish.archive import main

if __name__ == "__main__":
    sys.exit(main())
