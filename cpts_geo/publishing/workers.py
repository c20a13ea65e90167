"""Building the pages of a site in forked worker processes, with the outcome of one process.

:func:`run_pages` runs ``task(i)`` for ``i`` in ``range(n)``. With ``jobs=1`` it is a plain loop.
With more, the parent forks ``jobs - 1`` workers (on Linux, where ``fork`` copies the prepared
site data without pickling it) and works too; each process takes the next page from a shared
counter and writes its files into the build directory. What the caller sees is what the plain
loop gives:

* the warnings of each page are recorded where it was built and re-emitted in the parent, in page
  order, once each (the parent's filters then apply, as they would to the plain loop's);
* the first page (in page order) that fails raises its exception in the parent, after the
  warnings of the pages before it; the warnings of the pages after it are dropped and no further
  page is started;
* a worker that dies (killed, out of memory) fails the run with a :class:`RuntimeError`.

The workers die with the parent (``PR_SET_PDEATHSIG``), so a killed publication leaves no process
writing into its build directory (which the next run removes), nor holding its lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing as mp
import os
import pickle
import signal
import sys
import traceback
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any, cast

__all__ = ["can_fork", "run_pages"]

log = logging.getLogger("cpts_geo.publish")
_PR_SET_PDEATHSIG = 1

#: One page's outcome: (index, [(message, category, filename, lineno)], exception or None).
_Outcome = tuple[int, list[tuple[Any, type[Warning], str, int]], BaseException | None]


def can_fork() -> bool:
    """Whether pages can be built in forked workers here (Linux: fork is safe and cheap)."""
    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()


def _recorded(task: Callable[[int], None], i: int) -> _Outcome:
    """Run one page, recording its warnings (every one: the parent's filters apply later)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            task(i)
        except BaseException as exc:  # re-raised in the parent, in page order
            error: BaseException | None = exc
        else:
            error = None
    return i, [(w.message, w.category, w.filename, w.lineno) for w in caught], error


def _replay(records: list[tuple[Any, type[Warning], str, int]]) -> None:
    """Emit recorded warnings in this process, as from where they were raised."""
    modules = {getattr(m, "__file__", None): m for m in list(sys.modules.values())}
    for message, category, filename, lineno in records:
        module = modules.get(filename)
        if module is not None:
            registry = module.__dict__.setdefault("__warningregistry__", {})
            warnings.warn_explicit(message, category, filename, lineno,
                                   module=module.__name__, registry=registry)
        else:
            warnings.warn_explicit(message, category, filename, lineno)


def _sendable(outcome: _Outcome) -> bytes:
    """The outcome pickled, its exception rebuilt as the same type and text where it can be."""
    i, records, error = outcome
    try:
        plain = [(m, c, f, n) for m, c, f, n in records]
        pickle.loads(pickle.dumps(plain))
    except Exception:  # a warning that cannot be pickled: its text
        plain = [(str(m), c if isinstance(c, type) and _picklable(c) else UserWarning, f, n)
                 for m, c, f, n in records]
    if error is None:
        return pickle.dumps((i, plain, None, None))
    where = "".join(traceback.format_exception(error)).rstrip()
    for way in (_as_is, _by_state):
        try:
            data = pickle.dumps((i, plain, way(error), where))
            back = _rebuilt(pickle.loads(data)[2])
            if type(back) is type(error) and str(back) == str(error):
                return data
        except Exception:  # the next way
            continue
    return pickle.dumps((i, plain, RuntimeError(where), where))


def _picklable(obj: object) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def _as_is(error: BaseException) -> Any:
    return error


def _by_state(error: BaseException) -> Any:
    """An exception whose ``__init__`` does not take its ``args`` back: type, args, attributes."""
    return ("exception-state", type(error), error.args, dict(error.__dict__))


def _rebuilt(error: Any) -> BaseException | None:
    if isinstance(error, tuple) and error and error[0] == "exception-state":
        _, cls, args, state = error
        exc: BaseException = cls.__new__(cls)
        exc.args = args
        exc.__dict__.update(state)
        return exc
    return cast("BaseException | None", error)


def _take(counter: Any) -> int:
    """The next page to build (every process takes its pages from one shared counter)."""
    with counter.get_lock():
        i = int(counter.value)
        counter.value = i + 1
    return i


def _worker(task: Callable[[int], None], n: int, counter: Any, conn: Connection,
            parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    while (i := _take(counter)) < n:
        outcome = _recorded(task, i)
        if outcome[2] is not None:
            with counter.get_lock():
                counter.value = n  # no further page is started
        conn.send_bytes(_sendable(outcome))
    conn.close()


def _shrink() -> None:
    """Free what can be before forking: each worker starts with the parent's resident memory.

    The objects left are then frozen out of the garbage collector's reach (``gc.freeze``), so
    that a worker's collections do not write into every object and copy the pages that hold
    them (copy on write); :func:`run_pages` unfreezes them at the end.
    """
    gc.collect()
    gc.freeze()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)  # glibc: give freed heap back to the system


def run_pages(task: Callable[[int], None], n: int, jobs: int,
              done: Callable[[int], None] | None = None) -> None:
    """Run ``task(i)`` for every page ``i`` in ``range(n)``, in ``jobs`` processes.

    ``done(i)`` is called in the parent after page ``i``'s warnings were emitted, in page
    order (for a progress bar). See the module's description for warnings and errors.
    """
    if jobs <= 1 or n <= 1 or not can_fork():
        for i in range(n):
            task(i)
            if done is not None:
                done(i)
        return
    _shrink()
    ctx = mp.get_context("fork")
    counter = ctx.Value("l", 0)
    workers: list[tuple[Any, Connection]] = []
    outcomes: dict[int, _Outcome] = {}
    next_out = 0

    def stop() -> None:
        """Start no further page (one failed: the pages before it are still finished)."""
        with counter.get_lock():
            counter.value = n

    def flush() -> None:
        nonlocal next_out
        while next_out in outcomes:
            _, records, error = outcomes.pop(next_out)
            _replay(records)
            if error is not None:
                stop()
                raise error
            if done is not None:
                done(next_out)
            next_out += 1

    def receive(block: bool) -> None:
        ready = wait([c for _, c in workers] + [p.sentinel for p, _ in workers],
                     timeout=None if block else 0)
        for proc, conn in list(workers):
            if conn in ready or proc.sentinel in ready:
                alive = proc.is_alive()  # before reading: a process that ended sent it all
                try:
                    while conn.poll():
                        i, records, error, where = pickle.loads(conn.recv_bytes())
                        outcome = (i, records, _rebuilt(error))
                        if where is not None:
                            log.debug("page %d failed in a worker process:\n%s", i, where)
                        outcomes[outcome[0]] = outcome
                        if outcome[2] is not None:
                            stop()
                except EOFError:
                    pass
                if not alive:
                    proc.join()
                    workers.remove((proc, conn))
                    conn.close()
                    if proc.exitcode != 0:
                        stop()
                        raise RuntimeError(
                            f"a worker process building the pages (pid {proc.pid}) ended with "
                            f"exit code {proc.exitcode}; nothing was published")

    try:
        for _ in range(jobs - 1):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(task, n, counter, send, os.getpid()),
                               daemon=True)
            proc.start()
            send.close()
            workers.append((proc, recv))
        while (i := _take(counter)) < n:
            outcomes[i] = _recorded(task, i)
            if outcomes[i][2] is not None:
                stop()
            if workers:
                receive(block=False)
            flush()
        while workers:
            receive(block=True)
            flush()
        flush()
        if next_out != n:
            raise RuntimeError(f"the pages {next_out} to {n - 1} were not built by the worker "
                               "processes; nothing was published")
    finally:
        for proc, conn in workers:
            if proc.is_alive():
                proc.kill()
            proc.join()
            conn.close()
        gc.unfreeze()
