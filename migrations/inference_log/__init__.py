"""Alembic scripts of the inference log schema (see :mod:`migrations`)."""
