"""``python -m trader_ml``: the same as the ``trader-ml`` command."""

import sys

from trader_ml.cli import main

sys.exit(main())
