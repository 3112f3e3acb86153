"""The inference log schema's revisions, oldest first by ``down_revision``."""
