"""`python -m agent` runs dupctl."""

import sys

from agent.cli import main

sys.exit(main())
