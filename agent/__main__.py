"""`python -m agent` runs dupctl."""

import sys

from agent.entry import main

sys.exit(main())
