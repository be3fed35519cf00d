"""``python -m chainrule`` (also what ``torchrun -m chainrule`` runs)."""

import sys

from chainrule.cli import main

sys.exit(main())
