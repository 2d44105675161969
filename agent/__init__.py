"""dupctl: the dupstack agent on the backup server."""
