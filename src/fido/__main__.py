"""`python -m fido`: the same command line as the `fido` script."""

import sys

from fido._cli import main

if __name__ == "__main__":
    sys.exit(main())
