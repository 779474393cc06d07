"""Tasks: one folder each with the same shape (task.py, methods/, domain modules)."""
