"""The inventory of hosts to back up: schema.json, and its loader (load.py)."""
