"""Alembic scripts of the events schema (see :mod:`migrations`)."""
