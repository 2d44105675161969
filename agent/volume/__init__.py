"""The Cinder backup volume: find its device, probe, format, mount, fstab."""
