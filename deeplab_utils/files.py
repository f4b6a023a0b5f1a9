"""Writing files so that a crash never leaves a half-written one: :func:`atomic_write`.

Depends on the standard library alone, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_kwargs: object) -> Iterator[IO]:
    """Write to a temporary file beside ``path`` (mode "w" or "wb"), renamed over it on success.

    ``os.replace`` is atomic on one file system, so readers (and a run killed mid-write) see
    either the old file or the new one, never a truncated one. The folder is created if needed;
    on an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them current
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; these are ordinary files
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
