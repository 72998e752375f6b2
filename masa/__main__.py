"""``python -m masa`` runs the command line."""

import sys

from masa.cli import main

sys.exit(main())
