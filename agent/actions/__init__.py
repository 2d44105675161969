"""One module per dupctl action."""
