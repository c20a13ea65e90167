"""The release sequence: checks before building, recovery, and a site that is complete at every
step, even when the process is killed (SIGKILL) between two steps.

The sites here are small synthetic ones (a few files, each marked with its version), so that a
process can be forked and killed at every named step of :mod:`cpts_geo.publishing.release` in a
few milliseconds; ``tests/publishing/test_site.py`` kills real publications.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from cpts_geo.errors import PublishError
from cpts_geo.publishing import release
from cpts_geo.publishing.release import (
    check_target,
    install,
    lock,
    prepare_target,
    releases_of,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

FILES = ("index.html", "state.json", "summary.json", "departements/42/index.html",
         "assets/sort.js")


def write_site(directory: Path, version: str) -> Path:
    for name in FILES:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name} of version {version}\n", encoding="utf-8")
    return directory


def version_of(site: Path) -> str | None:
    """The version of a complete site at ``site`` (following links), None if it is incomplete."""
    try:
        found = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
        versions = {(site / name).read_text("utf-8").rsplit(" ", 1)[-1].strip()
                    for name in FILES}
    except OSError:
        return None
    if found != sorted(FILES) or len(versions) != 1:
        return None
    return versions.pop()


def publish_version(out: Path, version: str, keep: int = 3) -> Path:
    """What :func:`cpts_geo.publish` does around the build, with a synthetic site."""
    check_target(out)
    with lock(out):
        releases = prepare_target(out)
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=releases))
        write_site(build, version)
        return install(out, build, keep)


def killed_at(point: str, action: Callable[[], object]) -> None:
    """Run ``action`` in a child process that is killed (SIGKILL) at the step named ``point``."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            def checkpoint(name: str) -> None:
                if name == point:
                    os.kill(os.getpid(), signal.SIGKILL)

            release._checkpoint = checkpoint
            action()
        except BaseException:
            traceback.print_exc(file=sys.stderr)
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
        f"the child was not killed at {point!r} (exit status {os.waitstatus_to_exitcode(status)})"
    )


def leftovers(out: Path) -> list[str]:
    """Temporary entries of killed runs next to ``out`` or among its releases."""
    names = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    releases = releases_of(out)
    if releases.is_dir():
        names += [p.name for p in releases.iterdir() if p.name.startswith(".")]
    return names


# ------------------------------------------------------------------------------------------------
# Kill at every step
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("point", ["built", "released", "linked", "swapped"])
def test_first_publication_killed(tmp_path: Path, point: str) -> None:
    out = tmp_path / "site"
    killed_at(point, lambda: publish_version(out, "1"))
    # nothing was published before: there is no site yet, or the complete new one
    assert not os.path.lexists(out) or version_of(out) == "1"
    publish_version(out, "2")
    assert out.is_symlink() and version_of(out) == "2"
    assert leftovers(out) == []


@pytest.mark.parametrize("point", ["built", "released", "linked", "swapped"])
def test_update_killed_leaves_a_complete_site(tmp_path: Path, point: str) -> None:
    out = tmp_path / "site"
    publish_version(out, "1")
    killed_at(point, lambda: publish_version(out, "2"))
    assert version_of(out) in ("1", "2")  # the previous site, or the complete new one
    assert version_of(out) == ("1" if point != "swapped" else "2")
    publish_version(out, "3")
    assert out.is_symlink() and version_of(out) == "3"
    assert leftovers(out) == []


@pytest.mark.parametrize("point", ["built", "released", "linked", "exchanged", "legacy_moved"])
def test_first_migration_from_a_plain_directory_killed(tmp_path: Path, point: str) -> None:
    out = write_site(tmp_path / "site", "0")  # a plain site directory (by hand, older version)
    killed_at(point, lambda: publish_version(out, "1"))
    before_switch = point in ("built", "released", "linked")
    if before_switch:
        assert out.is_dir() and not out.is_symlink() and version_of(out) == "0"
    else:
        assert out.is_symlink() and version_of(out) == "1"
    publish_version(out, "2")
    assert out.is_symlink() and version_of(out) == "2"
    assert leftovers(out) == []
    # the old plain site is kept as a previous release, whatever the step of the kill
    legacy = [p for p in releases_of(out).iterdir() if p.name.endswith("-legacy")]
    assert len(legacy) == 1 and version_of(legacy[0]) == "0"


def test_pruning_killed_leaves_no_half_deleted_release(tmp_path: Path) -> None:
    out = tmp_path / "site"
    for v in "123":
        publish_version(out, v, keep=3)
    killed_at("trashed", lambda: publish_version(out, "4", keep=2))
    assert version_of(out) == "4"
    visible = [p for p in releases_of(out).iterdir() if not p.name.startswith(".")
               and p.is_dir()]
    assert all(version_of(p) is not None for p in visible)  # every listed release is whole
    publish_version(out, "5", keep=2)
    assert leftovers(out) == []
    assert sorted(version_of(p) for p in releases_of(out).iterdir() if p.is_dir()) == ["4", "5"]


def test_a_migration_keeps_the_old_site_as_the_previous_release(tmp_path: Path) -> None:
    out = write_site(tmp_path / "site", "0")
    os.utime(out, (1_700_000_000, 1_700_000_000))  # 2023-11-14T22:13:20Z
    new = publish_version(out, "1")
    assert out.is_symlink() and out.resolve() == new.resolve()
    assert os.readlink(out) == f"site.releases/{new.name}"  # relative: the tree can be moved
    legacy = releases_of(out) / "20231114T221320-legacy"
    assert version_of(legacy) == "0"
    # nothing else beside the site: the lock lives with the releases
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "site.releases"]
    assert sorted(p.name for p in releases_of(out).iterdir()) == [
        "20231114T221320-legacy", new.name, "publish.lock", "target.txt"]
    assert (releases_of(out) / "target.txt").read_text("utf-8") == f"{out}\n"


def test_two_publications_in_the_same_second_get_two_releases(tmp_path: Path) -> None:
    out = tmp_path / "site"
    first, second = publish_version(out, "1"), publish_version(out, "2")
    assert first != second and version_of(first) == "1" and version_of(second) == "2"


def test_recovery_leaves_other_sites_alone(tmp_path: Path) -> None:
    out = tmp_path / "site"
    other = tmp_path / "site.fr"  # another site in the same folder, name starting alike
    publish_version(other, "9")
    foreign = tmp_path / f".{other.name}.4242.link"
    os.symlink("site.fr.releases", foreign)
    mine = tmp_path / ".site.4242.link"
    os.symlink("site.releases", mine)
    publish_version(out, "1")
    assert os.path.lexists(foreign) and not os.path.lexists(mine)


# ------------------------------------------------------------------------------------------------
# Refused before anything is built
# ------------------------------------------------------------------------------------------------
def test_targets_that_cannot_hold_a_site(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(PublishError, match=rf"{a_file} is a file, not a folder"):
        check_target(a_file / "site")
    with pytest.raises(PublishError, match=rf"{a_file} is a file, not a folder"):
        check_target(a_file / "deeper" / "site")
    with pytest.raises(PublishError, match=r"notes.txt: it is a file, not a site folder"):
        check_target(a_file)
    (tmp_path / "site.releases").write_text("x", encoding="utf-8")
    with pytest.raises(PublishError, match=r"site.releases, where its releases are kept, is a "
                       r"file"):
        check_target(tmp_path / "site")
    (tmp_path / "www.releases" / "publish.lock").mkdir(parents=True)
    with pytest.raises(PublishError, match=r"www.releases/publish.lock, its lock file, is a "
                       r"folder"):
        check_target(tmp_path / "www")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_text("mine", encoding="utf-8")
    with pytest.raises(PublishError, match=r"docs exists and is not a cpts-geo site"):
        check_target(tmp_path / "docs")
    assert check_target(write_site(tmp_path / "old", "0")) is True  # a plain site: migrated
    assert check_target(tmp_path / "new") is False


def test_no_symbolic_links_is_refused_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = write_site(tmp_path / "site", "0")

    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_links)  # as on FAT or some network shares
    with pytest.raises(PublishError, match=r"has no symbolic links \(Operation not permitted\)"
                       r".*Publish to a local file system"):
        publish_version(out, "1")
    assert version_of(out) == "0" and not out.is_symlink()
    assert [p.name for p in releases_of(out).iterdir()] == ["publish.lock"]  # nothing built


def test_no_atomic_exchange_refuses_the_migration_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = write_site(tmp_path / "site", "0")
    monkeypatch.setattr(release, "_exchange_call", lambda: None)  # no renameat2 (NFS, FAT...)
    with pytest.raises(PublishError, match=r"needs an atomic exchange of directory entries.*"
                       r"Nothing was published. Migrate once by hand: move .*site into "):
        publish_version(out, "1")
    assert version_of(out) == "0" and not out.is_symlink()
    assert [p.name for p in releases_of(out).iterdir()] == ["publish.lock"]
    assert leftovers(out) == []
    # an existing link needs no exchange: publications go on where the migration is done
    out2 = tmp_path / "linked"
    publish_version(out2, "1")
    assert version_of(out2) == "1"


def test_this_system_can_exchange_directory_entries(tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("renameat2 is Linux's")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    os.symlink("elsewhere", b)
    release._exchange(b, a)
    assert a.is_symlink() and b.is_dir() and not b.is_symlink()



# ------------------------------------------------------------------------------------------------
# The state folder: releases and lock in one place the planner chooses
# ------------------------------------------------------------------------------------------------
def publish_with_state(out: Path, state: Path, version: str, keep: int = 3) -> Path:
    check_target(out, state)
    with lock(out, state):
        releases = prepare_target(out, state)
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=releases))
        write_site(build, version)
        return install(out, build, keep)


def test_a_chosen_state_folder_holds_the_releases_and_the_lock(tmp_path: Path) -> None:
    www, state = tmp_path / "www", tmp_path / "var" / "lib" / "cpts"
    www.mkdir()
    out = www / "cpts"
    for v in "1234":
        release_dir = publish_with_state(out, state, v)
    assert version_of(out) == "4" and out.resolve() == release_dir.resolve()
    assert sorted(p.name for p in www.iterdir()) == ["cpts"]  # nothing else in the web root
    releases = sorted(p for p in state.iterdir() if p.is_dir())
    assert [version_of(p) for p in releases] == ["2", "3", "4"]  # 3 kept by default
    assert sorted(p.name for p in state.iterdir() if p.is_file()) == ["publish.lock",
                                                                       "target.txt"]
    assert os.readlink(out) == os.path.relpath(release_dir, www)  # relative: trees can move


def test_killed_with_a_chosen_state_folder_leaves_a_complete_site(tmp_path: Path) -> None:
    out, state = tmp_path / "www" / "cpts", tmp_path / "state"
    out.parent.mkdir()
    publish_with_state(out, state, "1")
    killed_at("linked", lambda: publish_with_state(out, state, "2"))
    assert version_of(out) == "1"
    publish_with_state(out, state, "3")
    assert version_of(out) == "3" and leftovers(out) == []
    assert not [p for p in state.iterdir() if p.name.startswith(".")]


def test_a_state_folder_is_never_shared_nor_a_folder_of_other_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    publish_with_state(tmp_path / "a", state, "1")
    with pytest.raises(PublishError, match=r"holds the releases of .*/a, and pruning them would "
                       r"remove that site; give each site its own --state-dir"):
        check_target(tmp_path / "b", state)
    busy = tmp_path / "lib"  # a folder of other things: pruning would delete them
    (busy / "postgresql").mkdir(parents=True)
    (busy / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(PublishError, match=r"holds files that are not releases of cpts-geo "
                       r"\(notes.txt, postgresql\); give --state-dir a new or empty folder"):
        check_target(tmp_path / "c", busy)
    for inside in (tmp_path / "d", tmp_path / "d" / "state", tmp_path):
        with pytest.raises(PublishError, match=r"one must not be inside the other"):
            check_target(tmp_path / "d", inside)
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt", "postgresql"]


def test_the_lock_of_an_older_version_is_honoured_then_removed(tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "site"
    legacy = tmp_path / "site.lock"
    with open(legacy, "w") as held:
        held.write("4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(PublishError, match=r"another publication .* is running \(lock "
                           r".*site.lock held by pid 4242\)"):
            publish_version(out, "1")
    publish_version(out, "1")  # free: taken over and removed
    assert version_of(out) == "1" and not legacy.exists()


def test_a_publication_in_the_checkout_leaves_nothing_untracked(tmp_path: Path) -> None:
    """The README publishes with ``--out site`` from the checkout: .gitignore covers it all."""
    import shutil
    import subprocess

    from helpers import ROOT

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(ROOT / ".gitignore", checkout / ".gitignore")
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    out = checkout / "site"
    publish_version(out, "1")
    publish_version(out, "2")
    os.symlink("site.releases", checkout / f".site.{os.getpid()}.link")  # a killed run's
    (checkout / "site.lock").write_text("1", encoding="utf-8")  # an older version's lock
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=checkout, capture_output=True, text=True, check=True).stdout
    assert status.splitlines() == ["?? .gitignore"]


@pytest.mark.parametrize("syncfs", ["linux", "absent", "failing"])
def test_a_build_is_flushed_to_disk_before_the_switch(tmp_path: Path, monkeypatch,
                                                       syncfs: str) -> None:
    """One ``syncfs`` of the build's file system on Linux, else one ``fsync`` per file and
    folder; either way before the release is renamed into place and linked."""
    calls: list[str] = []
    real_fsync = os.fsync
    if syncfs == "linux" and release._syncfs_call() is None:
        pytest.skip("no syncfs here")
    if syncfs == "absent":
        monkeypatch.setattr(release, "_syncfs_call", lambda: None)
    elif syncfs == "failing":
        monkeypatch.setattr(release, "_syncfs_call", lambda: lambda fd: -1)
    elif syncfs == "linux":
        real_syncfs = release._syncfs_call()
        assert real_syncfs is not None

        def counted(fd: int) -> int:
            calls.append("syncfs")
            return real_syncfs(fd)

        monkeypatch.setattr(release, "_syncfs_call", lambda: counted)

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def checkpoint(name: str) -> None:
        calls.append(name)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(release, "_checkpoint", checkpoint)
    publish_version(tmp_path / "site", "1")
    flushed = calls[calls.index("built") + 1:calls.index("released")]
    if syncfs == "linux":
        assert flushed.count("syncfs") == 1
        assert flushed.count("fsync") == 1  # the releases folder, after the rename
    else:
        # every file, every folder (5 files in 4 folders), then the releases folder
        assert flushed.count("fsync") >= len(FILES) + 4 + 1
    assert version_of(tmp_path / "site") == "1"
