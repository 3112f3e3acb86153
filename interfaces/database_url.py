"""Database URLs as users write them, turned into what SQLAlchemy needs here.

Secrets and ``.env`` files carry ``postgresql://user@host/db``, the form libpq and every
PostgreSQL tool accept; SQLAlchemy reads that as "use psycopg2", which this project does not
install. Every place that opens one of the platform's databases (the events store, the
inference log, the migrations) passes the URL through :func:`normalise_url` first.
"""

from __future__ import annotations

__all__ = ["normalise_url"]


def normalise_url(url: str) -> str:
    """Point bare ``postgresql://`` (and ``postgres://``) URLs at psycopg 3."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare) :]
    return url
