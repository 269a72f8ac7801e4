"""``python -m mixsweep``: the ``mixsweep`` command, where its script is not on PATH."""

import sys

from mixsweep.cli import main

if __name__ == "__main__":  # worker processes that spawn re-import this module; they must not run the command
    sys.exit(main())
