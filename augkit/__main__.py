"""``python -m augkit``: the same command line as ``augkit``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
