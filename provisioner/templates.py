"""Where stack-start finds the Heat templates: package data, in a clone and in a wheel alike.

In a clone, provisioner/data/ links to heat/ (the files uploaded in Horizon); a wheel or an
sdist carries them as files.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().with_name("data")
CREATE_TEMPLATE = DATA / "dupstack.heat.yaml"
RESTORE_TEMPLATE = DATA / "dupstack.restore.heat.yaml"
