"""``python -m cnnviz``: the command line (see :mod:`cnnviz.cli`)."""

import sys

from cnnviz.cli import main

sys.exit(main())
