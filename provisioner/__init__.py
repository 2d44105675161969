"""dupstack provisioner: deploys and manages the backup stack from the user's machine."""
