"""``python -m neurocompile.cli``: the command line."""
import sys

from neurocompile.cli import main

sys.exit(main())
