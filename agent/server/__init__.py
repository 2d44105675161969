"""The backup server's own settings: duplicity environment, schedule, metadata lock."""
