"""``python -m phgmm.cli …`` (e.g. under ``torchrun -m phgmm.cli train …``) is ``phgmm …``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
