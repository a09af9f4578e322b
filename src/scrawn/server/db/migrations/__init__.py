"""Alembic migrations (env.py, versions/) and the shapes they share (shapes.py)."""
