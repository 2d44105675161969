"""dupctl: the dupstack agent on the backup server."""

from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent / "data"  # scripts and tables shipped with it
