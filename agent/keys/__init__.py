"""The backup keys: a GnuPG key plus its passphrase, and their escrow on the volume."""
