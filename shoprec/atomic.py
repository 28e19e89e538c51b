"""Replace a small text file atomically: a reader sees the old content or the new, never half.

Run records, reports, state files and the serving registry pointer are all read by other
processes (the Airflow UI, the Bento, the next task) while they may be rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | Path, text: str, *, durable: bool = False) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The temporary name carries the process id, so two processes writing the same file never
    share one, and starts with a dot, so readers that glob (``*.json``) never pick it up. It
    is removed if the write fails.

    Args:
        path: The file to replace (its folder is created).
        text: The whole new content (UTF-8).
        durable: Also ``fsync`` before the rename: for a pointer that must survive a power
            cut (the serving registry), not for a report that can be rebuilt.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
