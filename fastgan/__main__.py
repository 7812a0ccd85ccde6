"""``python -m fastgan`` is the ``fastgan`` command."""
import sys

from fastgan.cli import main

sys.exit(main())
