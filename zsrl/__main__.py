import sys

from zsrl.cli import main

sys.exit(main())
