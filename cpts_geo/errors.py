"""Exceptions and warnings raised by cpts_geo, and how warnings reach the caller.

Every error that comes from an input names where it comes from (file, row, column) and the value
that was received, so that a planner can find and fix the offending cell.

Warnings are emitted once, and point at the line of the caller's code that called a public
function (not at a line inside cpts_geo): public functions are wrapped with :func:`public`, which
collects the warnings raised during the call (including by the public functions it calls in turn)
and re-emits each distinct one once, when the outermost call returns.
"""

from __future__ import annotations

import contextvars
import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "AmbiguousCommuneError",
    "CptsGeoError",
    "CptsGeoWarning",
    "DataSourceError",
    "InputError",
    "InvalidInseeCodeError",
    "Problem",
    "PublishError",
    "ResourceLimitError",
    "TerritoryError",
    "UnknownCommuneError",
]


class CptsGeoError(Exception):
    """Base class of every error raised by cpts_geo."""


class CptsGeoWarning(UserWarning):
    """Warning about data that was accepted but changed or is doubtful.

    For example a code resolved to another commune, or a name matched approximately.
    """


class InputError(CptsGeoError, ValueError):
    """An input (argument, file, cell) is malformed."""


class InvalidInseeCodeError(InputError):
    """A value cannot be read as an INSEE commune code."""


class UnknownCommuneError(InputError, LookupError):
    """A code or a name matches no commune of the reference data."""


class AmbiguousCommuneError(InputError, LookupError):
    """A name matches several communes."""


class ResourceLimitError(InputError):
    """An input is larger than a stated limit (sheet size, file size, download size...).

    The message states the limit and how to raise it where a planner may need more.
    """


class DataSourceError(CptsGeoError, OSError):
    """Reference data could not be read or downloaded (the message names the file or URL)."""


class PublishError(CptsGeoError):
    """The site could not be published (another run holds the lock, the target is not a site)."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input.

    Attributes
    ----------
    source : str
        File name, or a description of the in-memory input.
    row : int or None
        Row number as a spreadsheet user sees it (header is row 1), or None.
    column : str or None
        Column name, or None.
    value : object
        The offending value.
    message : str
        What is wrong and what is allowed.
    """

    source: str
    row: int | None
    column: str | None
    value: object
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.message} (value: {self.value!r})"


class TerritoryError(InputError):
    """A territory file or table has one or more problems; ``problems`` lists all of them.

    The message says how many problems there are and what to do on its first line, then gives
    one problem a line; the same mistake on several rows (same column, value and message) is
    one line naming the rows (``rows 2-250``). ``problems`` always holds every problem, one per
    cell. A ``note`` ends the message (the cap on closest-name suggestions, for instance).
    """

    #: How many lines of problems the message lists (``problems`` always holds every one).
    shown = 20

    def __init__(self, problems: list[Problem], note: str | None = None):
        self.problems = list(problems)
        n = len(self.problems)
        groups = group_problems(self.problems)
        sources = list(dict.fromkeys(p.source for p in self.problems))
        head = (
            f"{plural(n, 'problem')} in {', '.join(sources) or 'territories'}: correct "
            f"{'this cell' if n == 1 else 'these cells'} in the file and read it again"
        )
        lines = [_group_line(rows, p) for rows, p in groups[: self.shown]]
        if len(groups) > self.shown:
            rest = sum(len(rows) for rows, _ in groups[self.shown:])
            lines.append(f"… and {plural(rest, 'more problem')} on other rows "
                         "(TerritoryError.problems lists them all)")
        if note:
            lines.append(note)
        super().__init__("\n".join([head, *lines]))

    @property
    def headline(self) -> str:
        """The first line of the message: how many problems, and what to do."""
        return str(self).split("\n", 1)[0]


def group_problems(problems: list[Problem]) -> list[tuple[list[int | None], Problem]]:
    """Problems grouped when only their row differs, in order of first appearance.

    Returns
    -------
    list of (rows, problem)
        The rows of each group (sorted) and its first problem.
    """
    groups: dict[tuple[str, str | None, str, str], tuple[list[int | None], Problem]] = {}
    for p in problems:
        key = (p.source, p.column, p.message, repr(p.value))
        if key in groups:
            groups[key][0].append(p.row)
        else:
            groups[key] = ([p.row], p)
    return [(sorted(rows, key=lambda r: -1 if r is None else r), p)
            for rows, p in groups.values()]


def row_ranges(rows: list[int], limit: int = 12) -> str:
    """``[2, 3, 4, 7, 9, 10]`` -> ``"rows 2-4, 7, 9-10"`` (the first ``limit`` ranges).

    Examples
    --------
    >>> row_ranges([2, 3, 4, 7, 9, 10]), row_ranges([5])
    ('rows 2-4, 7, 9-10', 'row 5')
    """
    rows = sorted(set(rows))
    spans: list[list[int]] = []
    for r in rows:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans[:limit])
    if len(spans) > limit:
        text += f", … ({len(rows)} rows in all)"
    return f"row{'s' if len(rows) > 1 else ''} {text}"


def _group_line(rows: list[int | None], p: Problem) -> str:
    if len(rows) == 1:
        return str(p)
    numbered = [r for r in rows if r is not None]
    where = p.source + (f", {row_ranges(numbered)}" if numbered else "")
    if p.column is not None:
        where += f", column {p.column!r}"
    return f"{where}: {p.message} (value: {p.value!r})"


# ---------------------------------------------------------------------------------------------
# Warnings that point at the caller
# ---------------------------------------------------------------------------------------------
_P = ParamSpec("_P")
_R = TypeVar("_R")
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("cpts_geo_inside", default=False)


def public(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Make the warnings of a public function point at its caller, once each.

    The outermost decorated call records every warning raised inside it (by cpts_geo, pandas or
    anything else) and re-emits each distinct one, in order, with a ``stacklevel`` that points at
    the line that called the public function. Nested decorated calls pass their warnings up to the
    outermost one. Exceptions propagate unchanged; warnings recorded before an exception are
    emitted all the same.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if _inside.get():
            return func(*args, **kwargs)
        token = _inside.set(True)
        caught: list[warnings.WarningMessage] = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                return func(*args, **kwargs)
        finally:
            _inside.reset(token)
            _reemit(caught)

    return wrapper


def _reemit(caught: list[warnings.WarningMessage]) -> None:
    seen: set[tuple[type[Warning], str]] = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key in seen:
            continue
        seen.add(key)
        # 1: _reemit, 2: wrapper, 3: the caller of the public function
        warnings.warn(w.message, w.category, stacklevel=3)


def warn(message: str) -> None:
    """Emit a :class:`CptsGeoWarning` (from inside a :func:`public` function)."""
    warnings.warn(message, CptsGeoWarning, stacklevel=2)


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``"1 commune"``, ``"3 communes"``: a count and its noun, for messages."""
    return f"{n} {word if n == 1 else plural_form or word + 's'}"


def first_items(items: list[Any] | tuple[Any, ...], n: int = 20, sep: str = ", ") -> str:
    """Join the first ``n`` items for a message, saying how many more there are."""
    head = sep.join(str(i) for i in items[:n])
    return head + (f"{sep}… and {len(items) - n} more" if len(items) > n else "")
