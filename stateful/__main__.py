"""``python -m stateful``: the same as the ``stateful`` command."""

import sys

from stateful.cli import main

sys.exit(main())
