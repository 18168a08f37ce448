import sys

from counting.cli import main

sys.exit(main())
