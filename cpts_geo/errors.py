"""Exceptions and warnings raised by cpts_geo.

Every error that comes from an input names where it comes from (file, row, column) and the value
that was received, so that a planner can find and fix the offending cell.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousCommuneError",
    "CptsGeoError",
    "CptsGeoWarning",
    "DataSourceError",
    "InputError",
    "InvalidInseeCodeError",
    "Problem",
    "TerritoryError",
    "UnknownCommuneError",
]

from dataclasses import dataclass


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


class DataSourceError(CptsGeoError, OSError):
    """Reference data could not be read or downloaded (the message names the file or URL)."""


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
    """A territory file or table has one or more problems; ``problems`` lists all of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        n = len(self.problems)
        head = "; ".join(str(p) for p in self.problems[:20])
        more = f" (and {n - 20} more)" if n > 20 else ""
        super().__init__(f"{n} problem{'s' if n > 1 else ''} in territories: {head}{more}")
