"""Files the platform's processes leave for each other and for people, written atomically.

A reader — another process, an MLflow upload, a person running ``cat`` — sees the old file or
the whole new one, never half of it: the text goes to a temporary file in the same folder, is
flushed to disk, and is renamed over the target.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_atomically", "write_json_atomically", "write_text_atomically"]


def write_atomically(path: Path | str, write: Callable[[Path], object], mode: int = 0o644) -> Path:
    """Let ``write`` fill a temporary file beside ``path``, then rename it over ``path``.

    Args:
        path: The file to create or replace; its folder is created if missing.
        write: Writes the whole content to the path it is given.
        mode: Permission bits of the result (``mkstemp`` would leave ``0600``).

    Returns:
        ``path``. The temporary file is removed if ``write`` raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomically(path: Path | str, payload: Mapping[str, Any] | list[Any]) -> Path:
    """Write ``payload`` as indented JSON (non-JSON values as ``str``) to ``path`` atomically."""
    return write_text_atomically(path, json.dumps(payload, indent=2, default=str) + "\n")
