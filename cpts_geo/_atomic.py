"""Atomic writes: a reader sees the old file or the complete new one, never a partial write.

Used by every layer that writes: the online cache, the command line's ``--output`` and the
published site.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "check_output", "default_mode", "fsync_dir", "write_bytes_atomic",
           "write_text_atomic"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, create_parent: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    On error the temporary file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    create_parent : bool
        Create the parent directory when it is missing (the command line passes False: a
        missing output folder is the user's mistake, reported, not silently created).

    Raises
    ------
    IsADirectoryError
        If ``path`` is a directory.
    FileNotFoundError
        If the parent directory is missing and ``create_parent`` is False.
    NotADirectoryError
        If a parent of ``path`` is a file.
    """
    target = check_output(path, create_parent=create_parent)
    if create_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, default_mode())  # mkstemp makes 0600: give the usual permissions
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def check_output(path: str | os.PathLike[str], *, create_parent: bool = True) -> Path:
    """Refuse an output path that cannot be written; return it as a Path (nothing is created).

    Raises
    ------
    IsADirectoryError
        If ``path`` is a directory.
    NotADirectoryError
        If a parent of ``path`` is a file.
    FileNotFoundError
        If the parent directory is missing and ``create_parent`` is False.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(21, "is a directory: give a file name", str(target))
    ancestor = target.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(20, "a parent of the output is a file, not a folder",
                                 str(ancestor))
    if not create_parent and not target.parent.is_dir():
        raise FileNotFoundError(2, "the output folder does not exist (create it first)",
                                str(target.parent))
    return target


def default_mode(directory: bool = False) -> int:
    """Permissions a new file (or directory) gets from the process umask (0644/0755 usually)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def write_text_atomic(path: str | os.PathLike[str], text: str, *,
                      create_parent: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path, create_parent=create_parent) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *,
                       create_parent: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, create_parent=create_parent) as tmp:
        tmp.write_bytes(data)


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (after a rename) where the platform allows it."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
