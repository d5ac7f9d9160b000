"""``python -m stateful.bench URL ...``: same as ``stateful bench URL ...``."""

import sys

from stateful.bench import main

sys.exit(main())
