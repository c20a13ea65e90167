"""Releasing a built site: checks before building, a lock, an atomic switch, recovery, pruning.

``out`` is a symbolic link to the current release, ``<state>/<UTC time>-<pid>/``. The state
folder (``state_dir``, default ``<out>.releases`` next to ``out``) is the one place a
publication keeps anything besides ``out``: the releases (the current site and the previous
ones), the lock ``publish.lock`` and ``target.txt`` (the ``out`` its releases belong to: two
sites never share a state folder, whose pruning would remove the other's site). A new
site is built in a hidden directory of the releases (``.build-*``), renamed into place once
complete, and ``out`` is switched to it by renaming a new symbolic link over the old one. Each
step is one ``rename``, so at every moment, even when the process is killed between two steps,
``out`` resolves to a complete site: the previous one or the new one. The only entries made next
to ``out`` are that link's temporary name and the probes of the file system
(``.<out>.<pid>.*``), for a moment; a killed run's are cleared by the next one.

The first publication over a plain directory (a site copied by hand, or published by an older
version) cannot rename a link over it (``rename`` refuses to replace a non-empty directory):
the link and the directory are exchanged in one step (Linux ``renameat2(RENAME_EXCHANGE)``, macOS
``renamex_np(RENAME_SWAP)``), then the old site is moved into the releases, where it stays
available as the previous release until it is pruned. On a system or file system that offers no
atomic exchange (NFS, FAT, Windows), or no symbolic links at all, the publication is refused
before anything is built, with what to do: there is no way to switch a site atomically there.

What a killed run leaves behind is cleared by the next one (with the lock held): its build
directory, its temporary link, a plain site exchanged but not yet moved (moved into the releases
then), a release being pruned.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO

from .._atomic import default_mode, fsync_dir
from ..errors import PublishError, warn

__all__ = ["check_target", "current_release", "install", "lock", "prepare_target", "prune",
           "releases_of", "swap"]

#: The state file that marks a directory as a site published by cpts-geo.
STATE_FILE = "state.json"
#: The lock of the publications of a site, in its state folder.
LOCK_FILE = "publish.lock"
#: The ``out`` whose releases a state folder holds (absolute path, one line).
TARGET_FILE = "target.txt"


def _checkpoint(name: str) -> None:
    """A named step of the release sequence; the kill tests stop the process at each one."""


def releases_of(out: Path, state_dir: str | os.PathLike[str] | None = None) -> Path:
    """The state folder of ``out``: its releases and lock; ``<out>.releases`` by default."""
    if state_dir is not None:
        return Path(state_dir).absolute()
    return out.with_name(out.name + ".releases")


def _lock_path(out: Path, state_dir: str | os.PathLike[str] | None = None) -> Path:
    return releases_of(out, state_dir) / LOCK_FILE


def _legacy_lock_path(out: Path) -> Path:
    """Where versions before 0.3 kept the lock: ``<out>.lock``, next to ``out``."""
    return out.with_name(out.name + ".lock")


def _temp_link(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}.link")


def _is_own_temp(out: Path, entry: Path, suffix: str) -> bool:
    """Whether ``entry`` is a temporary entry of a publication to ``out`` (any pid)."""
    return re.fullmatch(rf"\.{re.escape(out.name)}\.\d+\.{re.escape(suffix)}",
                        entry.name) is not None


# ---------------------------------------------------------------------------------------------
# Before building
# ---------------------------------------------------------------------------------------------
def check_target(out: Path, state_dir: str | os.PathLike[str] | None = None) -> bool:
    """Refuse a target that cannot hold a site; return True when ``out`` is a plain directory.

    Checked before anything is built or written: every existing parent of ``out`` is a
    directory; ``out`` is absent, a symbolic link, or a directory published by cpts-geo (it holds
    ``state.json``); the state folder (``<out>.releases`` by default) and its lock are not of
    the wrong kind, and the state folder holds no other site's releases.

    Raises
    ------
    PublishError
        Naming the path and what to do.
    """
    probe = out.parent
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise PublishError(
            f"cannot publish to {out}: {probe} is a file, not a folder; choose another --out"
        )
    plain = False
    if os.path.lexists(out) and not out.is_symlink():
        if not out.is_dir():
            raise PublishError(
                f"cannot publish to {out}: it is a file, not a site folder; choose another --out "
                "or remove the file"
            )
        if not os.path.lexists(out / STATE_FILE):
            raise PublishError(
                f"{out} exists and is not a cpts-geo site (no {STATE_FILE}); choose another "
                "--out or remove it"
            )
        plain = True
    releases = releases_of(out, state_dir)
    if releases == out or releases in out.parents or out in releases.parents:
        raise PublishError(
            f"cannot publish to {out} with the state folder {releases}: one must not be inside "
            "the other; choose a --state-dir beside or away from --out"
        )
    probe = releases
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if os.path.lexists(releases) and not releases.is_dir():
        raise PublishError(
            f"cannot publish to {out}: {releases}, where its releases are kept, is a file, not "
            "a folder; remove or rename it"
        )
    if not probe.is_dir():
        raise PublishError(
            f"cannot publish to {out}: {probe}, a parent of its state folder {releases}, is a "
            "file, not a folder; choose another --state-dir"
        )
    lock_file = _lock_path(out, state_dir)
    if lock_file.is_dir():
        raise PublishError(
            f"cannot publish to {out}: {lock_file}, its lock file, is a folder; remove it"
        )
    owner = _owner(releases)
    if owner is not None and owner != str(out):
        raise PublishError(
            f"cannot publish to {out}: its state folder {releases} holds the releases of "
            f"{owner}, and pruning them would remove that site; give each site its own "
            f"--state-dir (if {owner} was moved to {out}, delete {releases / TARGET_FILE})"
        )
    if owner is None and releases.is_dir():
        foreign = sorted(p.name for p in releases.iterdir() if not _is_state_entry(p.name))
        if foreign:
            raise PublishError(
                f"cannot publish to {out}: {releases}, its state folder, holds files that are "
                f"not releases of cpts-geo ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); give --state-dir a new or empty folder"
            )
    return plain


#: The name of a release (``<UTC time>-<pid>``, or ``-legacy`` for a site kept from before).
_RELEASE = re.compile(r"\d{8}T\d{6}(\.\d{6})?-(\d+|legacy)(-\d+)?")


def _is_state_entry(name: str) -> bool:
    """Whether ``name`` is something a publication keeps in its state folder."""
    return (_RELEASE.fullmatch(name) is not None or name in (LOCK_FILE, TARGET_FILE)
            or name.startswith((".build-", ".trash-")))


def _owner(releases: Path) -> str | None:
    """The ``out`` whose releases ``releases`` holds, None if it does not say (or is new)."""
    try:
        text = (releases / TARGET_FILE).read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def prepare_target(out: Path, state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Check the target again (with the lock held), probe the file system, clear left-overs.

    Creates the state folder (``<out>.releases`` by default) and returns it. Refuses, before
    anything is built, a file system without symbolic links, and a first publication over a
    plain directory where no atomic exchange of directory entries exists (or whose state folder
    is on another file system: the old site is moved there by one rename).

    Raises
    ------
    PublishError
        Naming the path and what to do.
    """
    plain = check_target(out, state_dir)
    releases = releases_of(out, state_dir)
    releases.mkdir(parents=True, exist_ok=True)
    _probe_symlinks(out, releases)
    if plain:
        _probe_exchange(out, releases)
        if os.stat(releases).st_dev != os.stat(out.parent).st_dev:
            raise PublishError(
                f"{out} is a plain folder (a site published by hand or by an older cpts-geo), "
                f"to be kept as the previous release in {releases}, which is on another file "
                "system: it cannot be moved there in one step. Nothing was published. Choose a "
                f"--state-dir on the file system of {out.parent}, or move {out} into "
                f"{releases}/ once by hand"
            )
    current = out.resolve() if out.is_symlink() else None
    if current is not None and current.parent != releases.resolve():
        warn(f"{out} links to {current}, outside its state folder {releases}: the releases "
             f"kept in {current.parent} are left as they are (remove them by hand)")
    recover(out, releases)
    if _owner(releases) is None:
        (releases / TARGET_FILE).write_text(f"{out}\n", encoding="utf-8")
    return releases


def _probe_symlinks(out: Path, releases: Path) -> None:
    probe = out.with_name(f".{out.name}.{os.getpid()}.probe-link")
    with contextlib.suppress(FileNotFoundError):
        probe.unlink()
    try:
        os.symlink(releases.name, probe)
    except OSError as exc:
        raise PublishError(
            f"cannot publish to {out}: the file system of {out.parent} has no symbolic links "
            f"({exc.strerror}); cpts-geo publishes by switching a symbolic link in one step, so "
            "that a web server never sees a half-written site. Publish to a local file system "
            "(ext4, xfs, btrfs, APFS...) and copy the site from there"
        ) from exc
    probe.unlink()


def _probe_exchange(out: Path, releases: Path) -> None:
    a = out.with_name(f".{out.name}.{os.getpid()}.probe-dir")
    b = out.with_name(f".{out.name}.{os.getpid()}.probe-link")
    for p in (a, b):
        _remove(p)
    try:
        a.mkdir()
        os.symlink(releases.name, b)
        _exchange(b, a)
        if not a.is_symlink():
            raise OSError(errno.EINVAL, "the exchange did not happen")
    except OSError as exc:
        raise PublishError(
            f"{out} is a plain folder (a site published by hand or by an older cpts-geo); "
            "replacing it with the symbolic link of an atomic publication needs an atomic "
            f"exchange of directory entries, which {out.parent} does not offer "
            f"({exc.strerror or exc}). Nothing was published. Migrate once by hand: move {out} "
            f"into {releases}/ (the site is then missing for the time of one "
            "publication) and publish again"
        ) from exc
    finally:
        for p in (a, b):
            _remove(p)


def _remove(path: Path) -> None:
    """Remove a file, a link or a directory tree, if it is there."""
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def recover(out: Path, releases: Path | None = None) -> None:
    """Clear what killed runs left: temporary links and builds, half-pruned releases.

    A plain site exchanged with the link of a first publication but not yet moved into the
    releases (the run was killed between the two steps) is moved there now. Called with the
    lock held, so no other run is working. ``releases``: the state folder (default
    ``<out>.releases``).
    """
    releases = releases_of(out) if releases is None else releases
    for entry in list(out.parent.iterdir()):
        if _is_own_temp(out, entry, "link"):
            if entry.is_dir() and not entry.is_symlink():
                _keep_as_legacy(entry, releases)
            else:
                _remove(entry)
        elif _is_own_temp(out, entry, "probe-dir") or _is_own_temp(out, entry, "probe-link"):
            _remove(entry)
    for entry in list(releases.iterdir()):
        if entry.name.startswith((".build-", ".trash-")):
            _remove(entry)


def _keep_as_legacy(site: Path, releases: Path) -> Path:
    """Move an old plain site into the releases, named like a release from its last change."""
    when = datetime.fromtimestamp(site.stat().st_mtime, UTC)
    legacy = _free_name(releases, f"{when:%Y%m%dT%H%M%S}-legacy")
    os.replace(site, legacy)
    return legacy


def _free_name(directory: Path, stem: str) -> Path:
    path = directory / stem
    n = 2
    while os.path.lexists(path):
        path = directory / f"{stem}-{n}"
        n += 1
    return path


# ---------------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def lock(out: Path, state_dir: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Hold the publication lock of ``out`` (``publish.lock`` in its state folder) or refuse.

    The lock ``<out>.lock`` of versions before 0.3, next to ``out``, is honoured too (a run of
    an older version is refused the same way) and removed when free.

    Raises
    ------
    PublishError
        If another process holds the lock (the message gives its pid).
    """
    path = _lock_path(out, state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        _flock(fh, out, path)
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        _clear_legacy_lock(out)
        yield
    finally:
        fh.close()


def _flock(fh: IO[str], out: Path, path: Path) -> None:
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


def _clear_legacy_lock(out: Path) -> None:
    """Refuse to run beside an older version holding ``<out>.lock``; remove it when free."""
    legacy = _legacy_lock_path(out)
    if not legacy.is_file() or legacy.is_symlink():
        return
    with open(legacy, "a+") as old:
        _flock(old, out, legacy)
        legacy.unlink()


# ---------------------------------------------------------------------------------------------
# Installing a build
# ---------------------------------------------------------------------------------------------
def current_release(out: Path) -> Path | None:
    """The release directory ``out`` points to (``out`` itself for a plain directory)."""
    if out.is_symlink():
        target = out.resolve()
        return target if target.is_dir() else None
    if out.is_dir():
        return out
    return None


def install(out: Path, build: Path, keep: int) -> Path:
    """Make the complete site in ``build`` the one published at ``out``; return its release.

    ``build`` (a directory of ``<out>.releases``) is flushed to disk (one ``syncfs`` on Linux),
    renamed to a release, ``out`` is switched to it (:func:`swap`) and old releases are pruned
    (:func:`prune`).
    """
    releases = build.parent
    _checkpoint("built")
    _flush_tree(build)
    os.chmod(build, default_mode(directory=True))  # mkdtemp makes 0700
    # named by the time to the microsecond, so that names sort in time order even for two runs
    # (two pids) in the same second; pruning keeps the newest by name
    release = _free_name(releases, f"{datetime.now(UTC):%Y%m%dT%H%M%S.%f}-{os.getpid()}")
    os.replace(build, release)
    fsync_dir(releases)
    _checkpoint("released")
    swap(out, release)
    prune(releases, keep, release)
    return release


def _flush_tree(build: Path) -> None:
    """Put every file and folder of ``build`` on disk before the release is switched in.

    On Linux, one ``syncfs`` of the file system of ``build`` (every dirty page and inode of
    that file system, written and waited for) replaces one ``fsync`` per file: a site has
    thousands of files, and one call costs about as much as the last of them. Elsewhere, or
    where ``syncfs`` fails, each file and folder is flushed one by one (macOS's ``sync``
    does not wait for the writes to reach the disk).
    """
    syncfs = _syncfs_call()
    if syncfs is not None:
        fd = os.open(build, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for item in build.rglob("*"):
        if item.is_file() and not item.is_symlink():
            with open(item, "rb") as fh:
                os.fsync(fh.fileno())
        elif item.is_dir() and not item.is_symlink():
            fsync_dir(item)
    fsync_dir(build)


@lru_cache(maxsize=1)
def _syncfs_call() -> Callable[[int], int] | None:
    """Linux's ``syncfs(fd)``, or None on another system."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return lambda fd: int(fn(fd))


def swap(out: Path, release: Path) -> None:
    """Point ``out`` at ``release`` in one step.

    A new symbolic link is made at a temporary name and renamed over ``out``; over a plain
    directory (the first publication), the link and the directory are exchanged in one step and
    the old site is then moved into the releases.
    """
    if os.path.lexists(out) and not out.is_symlink() and (
            not out.is_dir() or not os.path.lexists(out / STATE_FILE)):
        raise PublishError(
            f"{out} exists and is not a cpts-geo site; choose another --out or remove it"
        )
    tmp_link = _temp_link(out)
    _remove(tmp_link)
    os.symlink(os.path.relpath(release, out.parent), tmp_link)
    _checkpoint("linked")
    if out.is_dir() and not out.is_symlink():
        _exchange(tmp_link, out)  # out is the new link; the old site is at tmp_link's name
        fsync_dir(out.parent)
        _checkpoint("exchanged")
        _keep_as_legacy(tmp_link, release.parent)
        fsync_dir(release.parent)
        _checkpoint("legacy_moved")
    else:
        os.replace(tmp_link, out)
        _checkpoint("swapped")
    fsync_dir(out.parent)


def prune(releases: Path, keep: int, current: Path) -> None:
    """Remove old releases (keeping the ``keep`` newest) and the builds of killed runs.

    A release is renamed to a hidden name before it is deleted, so that a run killed while
    deleting leaves no half-deleted release among the complete ones (the next run removes it).
    Called with the lock held, so no other run is building.
    """
    done = sorted((p for p in releases.iterdir()
                   if p.is_dir() and not p.is_symlink() and _RELEASE.fullmatch(p.name)),
                  key=lambda p: p.name)
    for old in done[:-keep]:
        if old.resolve() != current.resolve():
            trash = releases / f".trash-{old.name}"
            os.replace(old, trash)
            _checkpoint("trashed")
            shutil.rmtree(trash, ignore_errors=True)
    for stale in releases.iterdir():
        if stale.name.startswith((".build-", ".trash-")) and stale != current:
            _remove(stale)


# ---------------------------------------------------------------------------------------------
# Atomic exchange of two directory entries
# ---------------------------------------------------------------------------------------------
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h
_RENAME_SWAP = 2  # macOS sys/stdio.h


@lru_cache(maxsize=1)
def _exchange_call() -> Callable[[bytes, bytes], int] | None:
    """The C call that swaps two paths atomically on this system, or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform == "darwin":
        fn = getattr(libc, "renamex_np", None)
        if fn is None:
            return None
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return lambda a, b: int(fn(a, b, _RENAME_SWAP))
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return lambda a, b: int(fn(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE))


def _exchange(a: Path, b: Path) -> None:
    """Swap the directory entries ``a`` and ``b`` in one step (both must exist).

    Raises
    ------
    OSError
        If the system or the file system cannot (``ENOSYS``, ``EINVAL``, ``ENOTSUP``...).
    """
    call = _exchange_call()
    if call is None:
        raise OSError(errno.ENOSYS, "no atomic exchange of directory entries on this system")
    if call(os.fsencode(a), os.fsencode(b)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))
