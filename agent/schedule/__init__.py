"""The tenant hosts schedule: cron expressions with per-host jitter, rendered into cron."""
