"""``python -m neurocompile ...`` (and so ``torchrun -m neurocompile ...``): the command line, neurocompile.cli."""
import sys

from neurocompile.cli import main

if __name__ == "__main__":
    sys.exit(main())
