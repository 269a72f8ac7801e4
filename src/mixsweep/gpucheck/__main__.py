import sys

from mixsweep.gpucheck.cli import main

sys.exit(main())
