import sys

from runsc_py.cli import main

sys.exit(main())
