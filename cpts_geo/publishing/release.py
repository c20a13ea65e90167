"""Releasing a built site: a lock against concurrent runs, an atomic swap, pruning.

``out`` is a symbolic link to the current release directory; a new release is built in a hidden
directory next to the releases, renamed into place, and the link is replaced with a rename, so a
web server always sees a complete site (the previous one or the new one).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ..errors import PublishError

__all__ = ["current_release", "lock", "prune", "swap"]


@contextlib.contextmanager
def lock(out: Path) -> Iterator[None]:
    """Hold the publication lock of ``out`` (``<out>.lock``) or refuse a second run.

    Raises
    ------
    PublishError
        If another process holds the lock (the message gives its pid).
    """
    path = out.with_name(out.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise PublishError(
                    f"another publication of {out} is running (lock {path} held by pid {holder}); "
                    "try again when it has finished"
                ) from exc
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def current_release(out: Path) -> Path | None:
    """The release directory ``out`` points to (``out`` itself for a plain directory)."""
    if out.is_symlink():
        target = out.resolve()
        return target if target.is_dir() else None
    if out.is_dir():
        return out
    return None


def swap(out: Path, release: Path) -> None:
    """Point ``out`` at ``release`` atomically (rename of a symbolic link over the old one)."""
    if out.exists() and not out.is_symlink():
        if not (out / "state.json").is_file():
            raise PublishError(
                f"{out} exists and is not a cpts-geo site; choose another --out or remove it"
            )
        # first publication over a plain directory made by hand or an older version: move it
        # into the releases directory so that it stays reachable as the previous release
        # named like a release from the time it was last changed, so that pruning sees it
        when = datetime.fromtimestamp(out.stat().st_mtime, UTC)
        legacy = release.parent / f"{when:%Y%m%dT%H%M%S}-legacy"
        os.replace(out, legacy)
    tmp_link = out.with_name(f".{out.name}.{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(os.path.relpath(release, out.parent), tmp_link)
    os.replace(tmp_link, out)


def prune(releases: Path, keep: int, current: Path) -> None:
    """Remove old releases (keeping ``keep``) and the builds of runs that were killed.

    Called with the lock held, so no other run is building.
    """
    done = sorted((p for p in releases.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)
    for old in done[:-keep]:
        if old.resolve() != current.resolve():
            shutil.rmtree(old, ignore_errors=True)
    for stale in releases.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)


