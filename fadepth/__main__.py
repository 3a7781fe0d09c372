import sys

from fadepth.cli import main

sys.exit(main())
