import sys

from counting.edge.cli import main

sys.exit(main())
