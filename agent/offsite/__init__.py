"""Offsite copies of the hosts' sets: S3 and Swift targets."""
