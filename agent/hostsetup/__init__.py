"""The pieces of `dupctl host add` (and remove), one concern per module."""
