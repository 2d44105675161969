"""Benchmarks of dupstack's backup path against plain tar | gpg (see bench/README.md)."""
