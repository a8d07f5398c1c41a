"""Files that hold customer data (SQLite database, exports) are the owner's alone.

Unhashed exports hold raw emails and phones, and the SQLite file holds every profile: created
0600 in folders created 0700, whatever the process's umask (a umask of 022 would give 0644,
readable by every account on the machine).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path, tighten: bool = False) -> None:
    """Create `path` and its missing parents as 0700. An existing folder is left as it is
    unless `tighten` (a folder of our own, like `var/exports`): it may be the user's."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        created.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask; chmod is not
    if tighten:
        path.chmod(DIR_MODE)


def open_private(path: Path) -> IO[str]:
    """`path` opened for writing text (truncated), mode 0600 even if it existed before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


def private_file(path: Path) -> None:
    """Make sure `path` exists and is 0600 (an empty file is a valid empty SQLite database).

    An existing file is tightened when it is ours to change; one owned by another account (a
    read-only database, say) is left to its owner rather than stopping the service."""
    if path.exists():
        with contextlib.suppress(PermissionError):
            path.chmod(FILE_MODE)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
