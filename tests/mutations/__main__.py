"""``python -m tests.mutations [NAME ...] [--list] [--no-baseline]``"""

import sys

from .run import main

sys.exit(main())
