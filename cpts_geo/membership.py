"""The membership table: which communes each CPTS covers, its schema and its validator.

The membership table is the pivot of cpts_geo: readers (:mod:`cpts_geo.io`) produce it from the
files planners keep, every computation consumes it, and proposals and scenarios produce new ones
that go through the same validator. One row per (CPTS, commune):

============  ================================================================================
column        meaning
============  ================================================================================
cpts          name of the CPTS
cpts_id       identifier (from the file, else a slug of the name: ``"vallee-du-gier"``)
insee         current INSEE code (a municipal arrondissement such as ``"69383"`` allowed)
nom           official name of the commune
share         part of the commune's population in the CPTS, in (0, 1]; 1.0 by default
status        ordered categorical of :data:`STATUSES`, NA when unknown
status_date   datetime64, NaT when unknown
source        where the row comes from (str or NA)
row           the row of the input (as a spreadsheet user sees it)
============  ================================================================================

This module parses and checks cell values (statuses, dates, shares, codes, names) and whole
tables, with no file I/O: reading files is :mod:`cpts_geo.io`'s job. Every problem is collected
with its row, column and value and reported at once in a
:class:`~cpts_geo.errors.TerritoryError`; values accepted but changed are reported in one
:class:`~cpts_geo.errors.CptsGeoWarning` per kind.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._text import fold
from .codes import (
    SUGGESTED_NAMES,
    NameMatch,
    _code_set,
    _index,
    _name_array,
    cog_year,
    commune_name,
    match_name,
    name_key,
    postal_code_communes,
    resolve_code,
)
from .errors import InputError, Problem, TerritoryError, warn
from .geography import city_of_arrondissement, normalize_departement
from .typing import DateLike

__all__ = [
    "COLUMNS",
    "STATUSES",
    "STATUS_DTYPE",
    "RawTable",
    "as_membership",
    "normalize_status",
    "parse_date",
    "parse_share",
    "slug",
]

STATUSES: tuple[str, ...] = (
    "proposition",
    "pré-projet",
    "lettre d'intention validée",
    "projet de santé validé",
    "ACI signé",
)
"""The CPTS life cycle, in order: a proposition (a candidate territory drawn by a planner or by
:func:`cpts_geo.propose_territories`, not yet a project), a pre-project, the letter of intent
validated by the ARS, the health project validated, and the ACI (accord conventionnel
interprofessionnel) signed with the CPAM."""

STATUS_DTYPE = pd.CategoricalDtype(list(STATUSES), ordered=True)

#: The columns of the membership table, in order.
COLUMNS: tuple[str, ...] = (
    "cpts", "cpts_id", "insee", "nom", "share", "status", "status_date", "source", "row",
)

_PROP, _PRE, _LI, _PS, _ACI = STATUSES
_STATUS_SPELLINGS: dict[str, str] = {
    **dict.fromkeys(["proposition", "proposal", "candidate", "candidat", "candidate"], _PROP),
    **dict.fromkeys(
        ["pre projet", "preprojet", "en pre projet", "pre project", "preproject"], _PRE
    ),
    **dict.fromkeys(
        [
            "lettre d intention valide", "lettre d intention", "lettre intention",
            "lettre intention valide", "li", "li valide", "letter of intent",
            "letter of intent validated", "letter of intent valid",
        ],
        _LI,
    ),
    **dict.fromkeys(
        [
            "projet de sante valide", "projet de sante", "projet sante", "projet sante valide",
            "ps valide", "health project", "health project validated",
        ],
        _PS,
    ),
    **dict.fromkeys(
        [
            "aci signe", "aci", "signe", "aci signed", "signed", "contrat aci signe",
            "contractualise", "contractualisee",
        ],
        _ACI,
    ),
}

# hyphens, apostrophes and other punctuation ("Code INSEE", "code_insee", "CODEINSEE").
_ALIASES: dict[str, tuple[str, ...]] = {
    "cpts": (
        "cpts", "nom cpts", "nom de la cpts", "cpts nom", "cpts name", "name cpts",
        "libellé cpts", "territoire", "territoire cpts", "nom territoire", "nom du territoire",
    ),
    "cpts_id": (
        "cpts_id", "id cpts", "code cpts", "identifiant cpts", "cpts code", "numéro cpts",
    ),
    "insee": (
        "insee", "code insee", "code commune", "codgeo", "code géo", "insee com", "code com",
        "code insee commune", "code insee de la commune", "depcom", "n° insee", "num insee",
        "numéro insee", "insee code", "commune code", "municipality code",
    ),
    "commune": (
        "commune", "communes", "liste communes", "liste des communes", "communes membres",
        "communes couvertes", "communes concernées", "communes du territoire", "municipality",
        "municipalities",
    ),
    "commune_name": (
        "nom commune", "nom de la commune", "libellé commune", "libellé", "lib com", "lib géo",
        "libgeo", "nom com", "commune nom", "commune name", "commune publiée",
        "municipality name", "noms des communes",
    ),
    "departement": (
        "département", "départements", "dep", "dept", "dpt", "code département", "code dep",
        "coddep", "num dep", "numéro département", "department", "departments",
    ),
    "status": (
        "statut", "status", "étape", "état", "stade", "avancement", "statut cpts", "étape cpts",
    ),
    "status_date": (
        "status_date", "date", "date statut", "date du statut", "date de signature",
        "date signature", "date signature aci", "date aci", "date de l'étape", "date étape",
    ),
    "share": (
        "share", "part", "quote-part", "proportion", "fraction", "part population",
        "part de la population",
    ),
    "source": ("source", "sources"),
    "postal_code": (
        "code postal", "codes postaux", "cp", "code_postal", "postal code", "zip", "zip code",
    ),
}
_COMMUNE_COLUMNS = ("insee", "commune", "commune_name")
_OUTLINE_COLUMNS = ("cpts", "cpts_id", "status", "status_date", "source")

_OUTPUT_COLUMNS = [
    "cpts", "cpts_id", "insee", "nom", "share", "status", "status_date", "source", "row",
]
_SPLIT_COLUMNS = ["insee", "nom", "cpts", "fraction", "assigned"]


_ITEM_SEPARATORS = re.compile(r"[,;\n\r\t]+")
_BULLETS = "-–—•·*▪◦ \u00a0"
_CODE_LIKE = re.compile(r"^(?:\d[\d\s.]*|2[AaBb]\s*\d[\d\s.]*)$")
_DEP_LISTS = re.compile(r"\s*(?:[,;/+&]|\bet\b)\s*", re.IGNORECASE)
_SPACES = re.compile(r"[\s\u00a0\u202f]+")

_MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1, "fevrier": 2, "fevr": 2, "fev": 2, "mars": 3,
    "avril": 4, "avr": 4, "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "aout": 8,
    "septembre": 9, "sept": 9, "sep": 9, "octobre": 10, "oct": 10, "novembre": 11, "nov": 11,
    "decembre": 12, "dec": 12,
}
_ISO_DATE = re.compile(
    r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
)
_FR_DATE = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?: \d{1,2}:\d{2}(?::\d{2})?)?$")
_TEXT_DATE = re.compile(r"^(?:(\d{1,2})(?:er)?\s+)?([a-z]+)\.?\s+(\d{4})$")
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")

# ---------------------------------------------------------------------------------------------
# Small value parsers
# ---------------------------------------------------------------------------------------------
def _is_empty(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    return isinstance(value, str) and not value.strip()


def _text(value: object) -> str:
    """Cell value as clean text: whitespace collapsed, whole floats without ``.0``."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return _SPACES.sub(" ", str(value)).strip()


def _header_key(header: object) -> str:
    return re.sub(r"[^a-z0-9]", "", fold(str(header)))


def slug(name: str) -> str:
    """Stable identifier from a CPTS name: ``"Vallée du Gier"`` -> ``"vallee-du-gier"``.

    Examples
    --------
    >>> slug("Vallée du Gier"), slug("Sud-Est Grenoblois")
    ('vallee-du-gier', 'sud-est-grenoblois')
    """
    text = re.sub(r"[^a-z0-9]+", "-", fold(name))
    return text.strip("-") or name


_HEADER_TO_COLUMN: dict[str, str] = {
    _header_key(alias): column for column, aliases in _ALIASES.items() for alias in aliases
}


def _status_key(text: str) -> str:
    key = fold(text)
    key = re.sub(r"^\s*\d+\s*[-.):/]?\s*", "", key)  # "1 - pré-projet", "4. ACI signé"
    key = re.sub(r"[’'`´‘ʼ_\-.:/]", " ", key)
    key = re.sub(r"\b(valide|validee|valides|validees|validated)\b", "valide", key)
    key = re.sub(r"\bsignee?s?\b", "signe", key)
    key = re.sub(r"^cpts\s+", "", " ".join(key.split()))
    return key


def normalize_status(value: object) -> str | None:
    """Turn a CPTS status as written in a file into its label in :data:`STATUSES`.

    Accepts the French labels and simple spellings, ignoring case, accents, hyphens and a
    leading step number: ``"aci"``, ``"ACI signe"``, ``"signé"``, ``"projet de sante"``,
    ``"lettre d'intention"``, ``"LI validée"``, ``"pre-projet"``, ``"préprojet"``,
    ``"4 - ACI signé"``...

    Parameters
    ----------
    value : str
        The status as written.

    Returns
    -------
    str or None
        One of :data:`STATUSES`, or None for an empty value.

    Raises
    ------
    InputError
        If the value is not a known status.

    Examples
    --------
    >>> normalize_status("aci signe"), normalize_status("LI validée"), normalize_status("")
    ('ACI signé', "lettre d'intention validée", None)
    """
    if _is_empty(value):
        return None
    if isinstance(value, str):
        found = _STATUS_SPELLINGS.get(_status_key(value))
        if found is not None:
            return found
    raise InputError(
        f"{value!r} is not a CPTS status: expected one of "
        f"{', '.join(repr(s) for s in STATUSES)} (simple spellings such as 'aci', "
        "'LI validée', 'projet de santé', 'pré-projet' are accepted)"
    )


#: Status dates outside these years are typos (``0202-01-01``), not dates: CPTS exist since the
#: 2016 law, and a date far in the future is no planning date either.
DATE_RANGE = (pd.Timestamp("2000-01-01"), pd.Timestamp("2099-12-31"))


def _to_timestamp(value: object) -> pd.Timestamp | None:
    """Parse a date; raises ValueError with the reason for a bad one."""
    if isinstance(value, str):
        return _text_timestamp(value)  # a column repeats the same few dates: parse each once
    return _parse_timestamp(value)


@lru_cache(maxsize=4096)
def _text_timestamp(value: str) -> pd.Timestamp | None:
    return _parse_timestamp(value)


def _parse_timestamp(value: object) -> pd.Timestamp | None:
    if _is_empty(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date | np.datetime64):
        try:
            ts = pd.Timestamp(value)
        except (ValueError, OverflowError):
            raise ValueError("is not a date pandas can represent") from None
        ts = ts.tz_localize(None) if ts.tzinfo is not None else ts
    elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if not math.isfinite(float(value)) or not 20000 <= float(value) <= 80000:
            raise ValueError("is not a date")
        ts = (_EXCEL_EPOCH + pd.Timedelta(days=float(value))).floor("D")  # an Excel serial
    else:
        text = fold(_text(value))
        match = None
        try:
            if match := _ISO_DATE.match(text):
                ts = pd.Timestamp(int(match[1]), int(match[2]), int(match[3]))
            elif match := _FR_DATE.match(text):
                ts = pd.Timestamp(int(match[3]), int(match[2]), int(match[1]))
            elif (match := _TEXT_DATE.match(text)) and match[2] in _MONTHS:
                ts = pd.Timestamp(int(match[3]), _MONTHS[match[2]], int(match[1] or 1))
            else:
                match = None
        except (ValueError, OverflowError):
            raise ValueError("is not a valid date (no such day)") from None
        if match is None:
            raise ValueError("is not a date")
    ts = pd.Timestamp(ts.date()) if ts != ts.normalize() else ts
    if not DATE_RANGE[0] <= ts <= DATE_RANGE[1]:
        raise ValueError(
            f"is outside {DATE_RANGE[0].year}-{DATE_RANGE[1].year} (a typo in the year?)"
        )
    return ts.as_unit("ns")


def parse_date(value: DateLike | None, *, what: str = "date") -> pd.Timestamp | None:
    """The one date parser of cpts_geo: status dates in files, ``as_of`` arguments, titles.

    Accepts ISO dates (``2020-07-09``, with or without a time), French dates, day first
    (``09/07/2020``, ``9.7.2020``), dates in words (``9 juillet 2020``, ``1er décembre 2023``,
    ``juillet 2020`` for the first of the month), ``datetime``/``date``/``Timestamp`` values and
    Excel date serials. A date must lie between 2000 and 2099 (``0202-01-01`` is a typo).

    Parameters
    ----------
    value : str, date or datetime, or None
        The date.
    what : str
        How to name the value in the error message (``"`as_of`"``, ``"status date"``).

    Returns
    -------
    pandas.Timestamp or None
        Midnight of that day (timezone dropped); None for an empty value.

    Raises
    ------
    InputError
        If the value is not a date, naming it and the accepted forms.

    Examples
    --------
    >>> parse_date("07/12/2020").date(), parse_date("9 juillet 2020").date()
    (datetime.date(2020, 12, 7), datetime.date(2020, 7, 9))
    >>> parse_date("2023-11-08").isoformat()
    '2023-11-08T00:00:00'
    """
    try:
        return _to_timestamp(value)
    except ValueError as exc:
        raise InputError(
            f"{what} {value!r} {exc}: expected a date such as 2020-07-09, 09/07/2020 or "
            "9 juillet 2020"
        ) from None


def parse_share(value: object) -> tuple[float, bool]:
    """Parse a share (the part of a commune's population in a CPTS).

    Empty means the whole commune (1.0). ``0.5``, ``"0,5"``, ``"50 %"`` all read as 0.5.

    Returns
    -------
    tuple of (float, bool)
        The share in (0, 1] and whether one was given.

    Raises
    ------
    ValueError
        With the reason, for a value that is not a number or is out of range.

    Examples
    --------
    >>> parse_share("50 %"), parse_share(""), parse_share("0,25")
    ((0.5, True), (1.0, False), (0.25, True))
    """
    if _is_empty(value):
        return 1.0, False
    percent = False
    if isinstance(value, bool):
        raise ValueError("is not a number")
    if isinstance(value, int | float | np.integer | np.floating):
        share = float(value)
    else:
        text = _SPACES.sub("", str(value))
        percent = text.endswith("%")
        text = text.rstrip("%").replace(",", ".")
        try:
            share = float(text)
        except ValueError:
            raise ValueError(
                "is not a number: expected a fraction such as 0.5 or a percentage such as "
                "'50 %'"
            ) from None
        if percent:
            share /= 100
    if not (math.isfinite(share) and 0 < share <= 1):
        hint = (
            "; write a percentage with its sign ('50 %') or as a fraction (0.5)"
            if not percent and 1 < share <= 100
            else ""
        )
        raise ValueError(
            f"is out of range: a share is the part of the commune's population in the CPTS, "
            f"more than 0 and at most 1 (or 100 %){hint}"
        )
    return share, True


def _split_items(value: object) -> list[object]:
    """Split a commune cell on commas, semicolons and new lines (names never contain them)."""
    if not isinstance(value, str):
        return [] if _is_empty(value) else [value]
    items = []
    for part in _ITEM_SEPARATORS.split(value):
        item = part.strip(_BULLETS).rstrip(".").strip()
        if item:
            items.append(item)
    return items


def _parse_departements(value: object) -> set[str]:
    """One or several départements in a cell.

    ``"42"``, ``"042"``, ``"Loire"``, ``"Haute Loire"``, ``"42, 69"``, ``"Loire et Rhône"``,
    ``"42 69"``.
    """
    text = _text(value)
    try:
        return {normalize_departement(value if not isinstance(value, str) else text)}
    except InputError:
        pass
    deps = set()
    for part in _DEP_LISTS.split(text):
        if not part:
            continue
        try:
            deps.add(normalize_departement(part))
        except InputError:
            words = part.split()
            if len(words) < 2 or not all(re.fullmatch(r"\d{1,3}|2[AaBb]", w) for w in words):
                raise
            deps.update(normalize_departement(w) for w in words)  # "42 69"
    return deps


class FormulaWithoutValue:
    """An Excel cell holding a formula whose result was never saved.

    Files written by a program, or saved with calculation turned off, hold formulas without
    their results: the value is unknown, not empty.
    """

    def __init__(self, formula: str):
        self.formula = formula

    def __repr__(self) -> str:
        return repr(self.formula)

    def __str__(self) -> str:
        return self.formula


def _unusable(value: object) -> str | None:
    """Why a cell's value cannot be read as text or a number (None when it can)."""
    if isinstance(value, FormulaWithoutValue):
        return ("formula without a saved value: open and save the file in Excel (or "
                "LibreOffice) so that its result is stored, or type the value")
    if isinstance(value, dict | list | tuple):
        return ("a nested value (a JSON object or list), not a text or a number: each "
                "property must be a plain value")
    return None


class RawTable:
    """Raw cells of a table as read from a file: header and rows with their row numbers.

    Parameters
    ----------
    source : str
        The file name (and sheet), for messages.
    header : list of str
        Column titles.
    rows : list of (int, list), optional
        Each data row with the number a spreadsheet user sees (empty rows left out).
    header_row : int
        The row number of the header.
    sheet : str, optional
        The sheet of a workbook.
    extras : dict, optional
        Cells beyond the header's columns, by row: ``{row: [(column letter, value), ...]}``
        (a workbook's stray values, kept apart so that a value in ``ZZ50000`` does not make
        every row 702 cells wide).
    frame : pandas.DataFrame, optional
        The data rows as text cells (``""`` when empty), indexed by row number: a text file's
        cells, read at once. ``rows`` is then built from it only when needed (the validator's
        vectorised path reads the frame).
    """

    def __init__(self, source: str, header: list[str],
                 rows: list[tuple[int, list[object]]] | None = None, header_row: int = 1,
                 sheet: str | None = None, frame: pd.DataFrame | None = None,
                 extras: dict[int, list[tuple[str, object]]] | None = None):
        self.source = source
        self.header = header
        self.header_row = header_row
        self.sheet = sheet
        self.frame = frame
        self.extras = extras or {}
        #: for a workbook of several sheets: which they are, and how to choose one
        self.sheets_note: str | None = None
        self._rows = rows

    @property
    def empty(self) -> bool:
        """Whether the table has no data row."""
        return self.frame.empty if self._rows is None and self.frame is not None else (
            not self.rows)

    @property
    def rows(self) -> list[tuple[int, list[object]]]:
        """The non-empty data rows with their numbers."""
        if self._rows is None:
            assert self.frame is not None
            values = self.frame.to_numpy(dtype=object)
            keep = (values != "").any(axis=1)
            self._rows = [(int(n), list(v)) for n, v, k in
                          zip(self.frame.index, values, keep, strict=True) if k]
        return self._rows


# ---------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------
def _map_columns(
    header: list[str], source: str, required: Sequence[str], wanted: Sequence[str],
    note: str | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Map canonical column -> position; return also the ignored headers."""
    found: dict[str, list[int]] = defaultdict(list)
    ignored = []
    for pos, title in enumerate(header):
        column = _HEADER_TO_COLUMN.get(_header_key(title))
        if column is not None and column in wanted:
            found[column].append(pos)
        elif title:
            ignored.append(title)
    twice = {c: ps for c, ps in found.items() if len(ps) > 1}
    if twice:
        desc = "; ".join(
            f"{' and '.join(repr(header[p]) for p in ps)} are both read as {c!r}"
            for c, ps in twice.items()
        )
        raise InputError(f"{source}: ambiguous columns: {desc}; rename or remove one")
    missing = [c for c in required if c not in found]
    if "commune" in required:
        missing = [c for c in missing if c != "commune"]
        if not set(found) & set(_COMMUNE_COLUMNS):
            missing.append("commune")
    if missing:
        postal = ""
        if "commune" in missing and "postal_code" in found:
            postal = ("; a postal code does not identify a commune (38400 serves only "
                      "Saint-Martin-d'Hères, but 42800 nine communes): add a column of commune "
                      "names or INSEE codes, which the postal codes then check")
        accepted = []
        for c in missing:
            names = list(_ALIASES[c])
            if c == "commune":
                names = [*_ALIASES["insee"], *names, *_ALIASES["commune_name"]]
            accepted.append(f"{c}: {', '.join(repr(n) for n in names)}")
        raise InputError(
            f"{source}: missing column(s) {', '.join(repr(c) for c in missing)}; columns found: "
            f"{', '.join(repr(h) for h in header if h) or 'none'}{f'; {note}' if note else ''}"
            "; accepted headers (case, "
            f"accents, spaces and underscores ignored): {'; '.join(accepted)}{postal}"
        )
    return {c: ps[0] for c, ps in found.items()}, ignored


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    """CPTS-level attributes of one input row (or outline feature)."""

    row: int
    cpts: str | None
    cpts_id: str | None
    status: str | None
    status_date: pd.Timestamp | None
    source: str | None


@dataclass
class _Member:
    entry: _Entry
    insee: str
    share: float
    share_given: bool
    value: object
    column: str | None
    former: bool = False  # resolved from a former commune's code or name


@dataclass
class _Group:
    """One CPTS: all the rows that name it."""

    key: str
    name: str
    rows: list[int] = field(default_factory=list)
    spellings: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    ids: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    dates: dict[pd.Timestamp, list[int]] = field(default_factory=lambda: defaultdict(list))
    cpts_id: str = ""
    status: str | None = None
    status_date: pd.Timestamp | None = None


#: How many rows a warning lists (it always gives the total).
_LISTED = 20


class Report:
    """Problems and warnings of one input, reported at once.

    Problems end in one :class:`~cpts_geo.errors.TerritoryError` listing them all
    (:meth:`raise_problems`); notes about values accepted but changed end in one
    :class:`~cpts_geo.errors.CptsGeoWarning` per kind (:meth:`warn`).
    """

    def __init__(self, source: str):
        self.source = source
        self.problems: list[Problem] = []
        self.notes: dict[str, list[str]] = defaultdict(list)
        #: unknown names that still get "closest name" suggestions (their cost is capped)
        self.suggestions_left = SUGGESTED_NAMES

    def problem(self, row: int | None, column: str | None, value: object, message: str) -> None:
        self.problems.append(Problem(self.source, row, column, value, message))

    def note(self, kind: str, text: str) -> None:
        self.notes[kind].append(text)

    def raise_problems(self) -> None:
        if self.problems:
            order = sorted(self.problems, key=lambda p: -1 if p.row is None else p.row)
            note = None
            if self.suggestions_left < 0:
                note = (f"(closest names are searched for the first {SUGGESTED_NAMES} unknown "
                        f"names only, of {SUGGESTED_NAMES - self.suggestions_left})")
            raise TerritoryError(order, note)

    def warn(self) -> None:
        titles = {
            "code": "code(s) are not current communes and were resolved",
            "name": "name(s) were resolved with care",
            "spelling": "CPTS name(s) are written in several ways; the first spelling is used",
            "mismatch": "row(s) give a commune code and a name that disagree; the code is used "
            "(trust_codes)",
            "misspelt": "row(s) give a commune code and its name spelt differently; the code is "
            "used",
            "repaired": "invalid outline(s) were repaired with shapely.make_valid",
            "split": "commune(s) are split between CPTS outlines (see "
            "cpts_geo.outline_fractions for the fractions)",
            "merged": "row(s) name former communes now merged into one commune, listed once",
            "no_geometry": "commune(s) of these départements have no boundary in the reference "
            "data and cannot be assigned from outlines; add them by code if a CPTS covers them",
            "shares": "commune(s) have shares adding up to more than 1: counted as overlaps",
        }
        for kind, texts in self.notes.items():
            shown = "; ".join(texts[:_LISTED])
            more = f"; … and {len(texts) - _LISTED} more" if len(texts) > _LISTED else ""
            warn(f"{self.source}: {len(texts)} {titles[kind]}: {shown}{more}")


def _getter(values: list[object], header: list[str], cols: dict[str, int]) -> Callable[
    [str], tuple[str | None, object]
]:
    def get(column: str) -> tuple[str | None, object]:
        pos = cols.get(column)
        if pos is None:
            return None, None
        return header[pos], values[pos] if pos < len(values) else None

    return get


def _parse_entry(
    row: int, get: Callable[[str], tuple[str | None, object]], report: Report
) -> _Entry:
    title, value = get("cpts")
    cpts = None
    if _is_empty(value):
        report.problem(row, title, value, "missing CPTS name")
    else:
        cpts = _text(value)
    _, value = get("cpts_id")
    cpts_id = None if _is_empty(value) else _text(value)
    title, value = get("status")
    status = None
    try:
        status = normalize_status(value)
    except InputError as exc:
        report.problem(row, title, value, str(exc))
    title, value = get("status_date")
    date = None
    try:
        date = parse_date(value, what="status date")  # type: ignore[arg-type]
    except InputError as exc:
        report.problem(row, title, value, str(exc))
    _, value = get("source")
    source = None if _is_empty(value) else _text(value)
    return _Entry(row, cpts, cpts_id, status, date, source)


def _looks_like_code(item: object) -> bool:
    if isinstance(item, bool):
        return False
    if isinstance(item, int | float | np.integer | np.floating):
        return True
    return bool(_CODE_LIKE.match(str(item).strip()))


def _match(item: object, deps: set[str] | None, fuzzy: bool, report: Report,
           postal: str | None = None) -> NameMatch:
    """Resolve a name, with closest-name suggestions while the report's budget lasts."""
    m = match_name(item, deps, fuzzy=fuzzy, suggest=report.suggestions_left > 0,
                   postal_code=postal)
    if m.status == "unknown" and m.message != "empty commune name":
        if report.suggestions_left <= 0:
            m = NameMatch(m.name, None, "unknown", f"{m.message} (closest names are searched "
                          f"for the first {SUGGESTED_NAMES} unknown names only)")
        report.suggestions_left -= 1
    return m


def _resolve_item(
    item: object, deps: set[str] | None, fuzzy: bool, report: Report, postal: str | None = None
) -> tuple[str | None, str | None, tuple[str, str] | None, NameMatch | None]:
    """(code, problem, (note kind, note), name match) for one commune value, a code or a name."""
    if _looks_like_code(item):
        found = resolve_code(item)
        problem = found.problem
        if problem is not None and problem.startswith("unknown INSEE code"):
            served = postal_code_communes(item)
            if served:
                problem += (f"; it is the postal code of {_names(served)}: write the INSEE "
                            "code, or name the column 'code postal' and add the communes' names")
        return found.code, problem, None if found.note is None else ("code", found.note), None
    m = _match(item, deps, fuzzy, report, postal)
    if m.status == "exact":
        return m.code, None, None, m
    if m.status in ("former", "close"):
        return m.code, None, ("name", m.message), m
    return None, m.message, None, m


def _names(codes: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(f"{commune_name(c)} ({c})" for c in codes[:limit])
    return shown + (f" and {len(codes) - limit} more" if len(codes) > limit else "")


def _expand_et(item: object, deps: set[str] | None) -> list[object]:
    """Split ``"A et B"`` (the last item of a French list) when it is not itself a name.

    Split when every part is a commune name (exactly, or of several communes: the parts are then
    reported one by one, e.g. ``"Gières et Venon"`` without a département).
    """
    if not isinstance(item, str) or not re.search(r"\s+et\s+", item) or _looks_like_code(item):
        return [item]
    if match_name(item, deps, suggest=False).status != "unknown":
        return [item]
    parts = re.split(r"\s+et\s+", item)
    if all(match_name(p, deps, suggest=False).status != "unknown" for p in parts):
        return list(parts)
    return [item]


def _secondary_check(
    code: str, given: object, value: object, deps: set[str] | None, row: int, column: str | None,
    report: Report, trust_codes: bool,
) -> None:
    """Compare the code of a row with the name (or second code) it also gives.

    A name of the code's commune (exact, former, one of the communes an ambiguous name may be,
    or a close misspelling, with a warning) agrees; anything else is a problem showing both,
    and saying so when the code is the postal code of the named commune. ``trust_codes`` makes
    it a warning (the code is used).
    """
    items = _split_items(value)
    if len(items) != 1:
        return
    item = items[0]
    idx = _index()
    nom = idx.current[code].nom
    dep = idx.current[code].departement
    if _looks_like_code(item):
        other = resolve_code(item).code
        if other == code:
            return
        said = f"{item!r} ({commune_name(other)})" if other else f"{item!r} (no commune)"
    else:
        if name_key(str(item)) == name_key(nom):
            return
        m = match_name(item, deps or {dep}, suggest=False)
        if m.code == code or (m.status == "ambiguous" and code in m.codes):
            return
        if m.status == "unknown" and difflib.SequenceMatcher(
                None, name_key(str(item)), name_key(nom)).ratio() >= 0.8:
            anywhere = match_name(item, deps, suggest=False)
            if anywhere.status == "unknown":  # a misspelling of the code's commune
                report.note("misspelt", f"row {row}: code {code} is {nom}, spelt {item!r}")
                return
        m = match_name(item, deps, suggest=False)
        named = [m.code] if m.code else list(m.codes)
        if m.code:
            said = f"{item!r} ({m.code})"
        elif named:
            said = f"{item!r} (the name of {', '.join(named[:5])}{'...' if len(named) > 5 else ''})"
        else:
            said = f"{item!r}, which is no commune's name"
        served = set(postal_code_communes(given)) if _looks_like_code(given) else set()
        postal = [c for c in named if c in served]
        if postal and not trust_codes:
            report.problem(
                row, column, given,
                f"{given!r} is the INSEE code of {nom} ({dep}), but the row names {said}, whose "
                f"postal code is {_text(given)}: write the INSEE code {postal[0]}, or name the "
                "column 'code postal' if it holds postal codes (to use the codes whatever the "
                "names say: trust_codes=True, --trust-codes)",
            )
            return
    if trust_codes:
        report.note("mismatch", f"row {row}: code {code} is {nom}, but the row also says {said}")
        return
    report.problem(
        row, column, given,
        f"code {code} is {nom} ({dep}), but the row also says {said}: correct the code or the "
        "name (to use the codes whatever the names say: trust_codes=True, --trust-codes)",
    )


def _cell_problems(
    row: int, values: list[object], header: list[str], cols: dict[str, int], report: Report
) -> bool:
    """Report the cells of the used columns that hold no readable value; True if any."""
    found = False
    for pos in sorted(cols.values()):
        if pos < len(values) and (why := _unusable(values[pos])) is not None:
            report.problem(row, header[pos], values[pos], why)
            found = True
    return found


def _table_members(
    table: RawTable,
    cols: dict[str, int],
    *,
    scope: set[str] | None,
    fuzzy: bool,
    report: Report,
    trust_codes: bool = False,
) -> tuple[list[_Entry], list[_Member], bool]:
    entries: list[_Entry] = []
    members: list[_Member] = []
    ambiguous: list[tuple[_Entry, str | None, object, NameMatch]] = []
    wide = False
    idx = _index()
    width = len(table.header)
    for row, values in table.rows:
        extra = [v for v in values[width:] if not _is_empty(v)]
        stray = [(ref, v) for ref, v in table.extras.get(row, []) if not _is_empty(v)]
        if stray:
            refs = ", ".join(f"{ref}" for ref, _ in stray[:5])
            report.problem(
                row, None, [v for _, v in stray][:5],
                f"{plural_cells(len(stray))} beyond the table's {width} columns ({refs}): "
                "delete what is not part of the table, or give its column a header",
            )
            continue
        if extra:
            report.problem(
                row, None, extra,
                f"the row has {width + len(extra)} cells but the header only {width} columns "
                "(a list of communes not quoted in a comma-separated file?)",
            )
            continue
        if _cell_problems(row, values, table.header, cols, report):
            continue
        get = _getter(values, table.header, cols)
        entry = _parse_entry(row, get, report)
        entries.append(entry)
        deps = scope
        title, value = get("departement")
        if not _is_empty(value):
            try:
                deps = _parse_departements(value)
            except InputError as exc:
                report.problem(row, title, value, str(exc))
                deps = scope
        title, value = get("share")
        share, given = 1.0, False
        try:
            share, given = parse_share(value)
        except ValueError as exc:
            report.problem(row, title, value, f"share {value!r} {exc}")
        postal = None
        _, postal_value = get("postal_code")
        if not _is_empty(postal_value):
            digits = _SPACES.sub("", _text(postal_value))
            digits = "0" + digits if digits.isdigit() and len(digits) == 4 else digits
            postal = digits if postal_code_communes(digits) else None
            if postal is None:
                report.problem(row, table.header[cols["postal_code"]], postal_value,
                               f"{postal_value!r} is not a postal code of any commune")
                continue
        cells = [get(c) for c in _COMMUNE_COLUMNS if c in cols]
        filled = [(t, v) for t, v in cells if _split_items(v)]
        if not filled:
            report.problem(row, cells[0][0], cells[0][1], "empty commune")
            continue
        column, primary = filled[0]
        items = [x for item in _split_items(primary) for x in _expand_et(item, deps)]
        wide = wide or len(items) > 1
        for item in items:
            code, problem, note, match = _resolve_item(
                item, deps, fuzzy, report, postal if not _looks_like_code(item) else None)
            if problem is not None:
                if match is not None and match.status == "ambiguous" and entry.cpts is not None:
                    ambiguous.append((entry, column, item, match))
                else:
                    report.problem(row, column, item, problem)
                continue
            assert code is not None
            if note is not None:
                report.note(note[0], f"row {row}: {note[1]}")
            dep = idx.current[code].departement
            if deps is not None and deps is not scope and dep not in deps:
                report.problem(
                    row, column, item,
                    f"commune {code} ({idx.current[code].nom}) is in département {dep}, not in "
                    f"{', '.join(sorted(deps))} as the row says",
                )
                continue
            if len(items) == 1 and len(filled) > 1:
                before = len(report.problems)
                _secondary_check(code, item, filled[1][1], deps, row, column, report,
                                 trust_codes)
                if len(report.problems) > before:
                    continue
            if entry.cpts is not None:
                former = note is not None and (
                    note[0] == "code" or " is a former name" in note[1])
                members.append(_Member(entry, code, share, given, item, column, former))
    _report_ambiguous(ambiguous, members, report)
    return entries, members, wide


def plural_cells(n: int) -> str:
    return "a value" if n == 1 else f"{n} values"


def _report_ambiguous(
    ambiguous: list[tuple[_Entry, str | None, object, NameMatch]], members: list[_Member],
    report: Report,
) -> None:
    """Report ambiguous names, saying which candidate lies where the rest of the CPTS lies."""
    deps_of: dict[str, set[str]] = defaultdict(set)
    for m in members:
        assert m.entry.cpts is not None
        deps_of[slug(m.entry.cpts)].add(_index().current[m.insee].departement)
    for entry, column, item, match in ambiguous:
        assert entry.cpts is not None
        deps = deps_of.get(slug(entry.cpts), set())
        message = match.message
        if len(deps) == 1:
            (dep,) = deps
            here = [c for c in match.codes if _index().current[c].departement == dep]
            where = (f"the other communes of CPTS {entry.cpts!r} are all in département {dep}")
            if len(here) == 1:
                message += (f"; {where}: {commune_name(here[0])} ({here[0]}) is probably meant: "
                            f"write '{item} ({dep})', its INSEE code, or add a département "
                            "column")
            elif here:
                message += f"; {where}, which has {len(here)} of them: give the INSEE code"
            else:
                message += f"; {where}, which has none of them"
        report.problem(entry.row, column, item, message)


# ---------------------------------------------------------------------------------------------
# CPTS-level checks
# ---------------------------------------------------------------------------------------------
def _rows(rows: list[int]) -> str:
    return f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))}"


def _group_cpts(
    entries: list[_Entry], titles: dict[str, str], report: Report
) -> dict[str, _Group]:
    """Group rows by CPTS (names compared by slug) and check ids, statuses and dates."""
    groups: dict[str, _Group] = {}
    for e in entries:
        if e.cpts is None:
            continue
        key = slug(e.cpts)
        g = groups.setdefault(key, _Group(key, e.cpts))
        g.rows.append(e.row)
        g.spellings[e.cpts].append(e.row)
        if e.cpts_id is not None:
            g.ids[e.cpts_id].append(e.row)
        if e.status is not None:
            g.statuses[e.status].append(e.row)
        if e.status_date is not None:
            g.dates[e.status_date].append(e.row)
    by_id: dict[str, list[_Group]] = defaultdict(list)
    for g in groups.values():
        if len(g.spellings) > 1:
            report.note(
                "spelling",
                " / ".join(f"{s!r} ({_rows(rs)})" for s, rs in g.spellings.items()),
            )
        for attr, label, column in (
            ("ids", "cpts_id", "cpts_id"),
            ("statuses", "statuses", "status"),
            ("dates", "status dates", "status_date"),
        ):
            values: dict[Any, list[int]] = getattr(g, attr)
            if len(values) > 1:
                desc = "; ".join(
                    f"{v.date() if isinstance(v, pd.Timestamp) else v!s} ({_rows(rs)})"
                    for v, rs in values.items()
                )
                first_conflict = sorted(r for rs in list(values.values())[1:] for r in rs)[0]
                report.problem(
                    first_conflict, titles.get(column, column),
                    [v.date() if isinstance(v, pd.Timestamp) else v for v in values],
                    f"CPTS {g.name!r} has conflicting {label}: {desc}",
                )
        g.cpts_id = next(iter(g.ids)) if g.ids else slug(g.name)
        g.status = next(iter(g.statuses)) if g.statuses else None
        g.status_date = next(iter(g.dates)) if g.dates else None
        by_id[g.cpts_id].append(g)
    for cpts_id, gs in by_id.items():
        if len(gs) > 1:
            desc = "; ".join(f"{g.name!r} ({_rows(g.rows)})" for g in gs)
            report.problem(
                gs[1].rows[0], titles.get("cpts_id", titles.get("cpts")), cpts_id,
                f"cpts_id {cpts_id!r} is used by several CPTS: {desc}",
            )
    return groups


def _check_members(members: list[_Member], report: Report) -> list[_Member]:
    """Duplicates, merged communes, a city with its own arrondissements, shares over 1.

    Returns the members kept (a commune named twice through two of its former communes is kept
    once).
    """
    seen: dict[tuple[str, str], _Member] = {}
    by_commune: dict[str, list[_Member]] = defaultdict(list)
    kept: list[_Member] = []
    for m in members:
        assert m.entry.cpts is not None
        key = (slug(m.entry.cpts), m.insee)
        first = seen.get(key)
        if first is not None:
            nom = _index().current[m.insee].nom
            if (m.former or first.former) and name_key(str(m.value)) != name_key(
                    str(first.value)):
                # two former communes of one commune nouvelle, both listed: a real list
                report.note(
                    "merged",
                    f"{first.value!r} ({_rows([first.entry.row])}) and {m.value!r} "
                    f"({_rows([m.entry.row])}) are both {m.insee} {nom} in CPTS "
                    f"{m.entry.cpts!r}",
                )
                continue
            where = (
                f"twice in row {m.entry.row}" if first.entry.row == m.entry.row
                else f"in rows {first.entry.row} and {m.entry.row}"
            )
            report.problem(
                m.entry.row, m.column, m.value,
                f"duplicate: commune {m.insee} ({nom}) is listed {where} for CPTS "
                f"{m.entry.cpts!r}",
            )
            continue
        seen[key] = m
        by_commune[m.insee].append(m)
        kept.append(m)
    city_of = city_of_arrondissement()
    for (cpts_key, code), m in seen.items():
        city = city_of.get(code)
        if city is not None and (cpts_key, city) in seen:
            whole = seen[(cpts_key, city)]
            report.problem(
                m.entry.row, m.column, m.value,
                f"CPTS {m.entry.cpts!r} lists both the city {city} "
                f"({_index().current[city].nom}, {_rows([whole.entry.row])}) and its "
                f"arrondissement {code} ({_index().current[code].nom}): its inhabitants would "
                "count twice; list the city whole or some of its arrondissements, not both",
            )
    for insee, ms in by_commune.items():
        total = sum(m.share for m in ms)
        if len(ms) > 1 and any(m.share_given for m in ms) and total > 1 + 1e-6:
            # CPTS claiming more than the whole commune overlap there: a fact planners need to
            # see (the coverage counts each inhabitant once), not an input error
            report.note(
                "shares",
                f"{insee} {_index().current[insee].nom}: {total:g} "
                f"({_rows([m.entry.row for m in ms])})",
            )
    return kept


# ---------------------------------------------------------------------------------------------
# Whole tables
# ---------------------------------------------------------------------------------------------
def members_frame(
    members: list[_Member], groups: dict[str, _Group], names: dict[str, str] | None = None
) -> pd.DataFrame:
    """The membership table of checked members (columns :data:`COLUMNS`, typed)."""
    current = _index().current
    names = names or {}
    out_rows = []
    for m in members:
        assert m.entry.cpts is not None
        g = groups[slug(m.entry.cpts)]
        unit = current.get(m.insee)
        nom = names.get(m.insee) or (unit.nom if unit is not None else "")
        out_rows.append((g.name, g.cpts_id, m.insee, nom, m.share, g.status, g.status_date,
                         m.entry.source, m.entry.row))
    columns = list(zip(*out_rows, strict=True)) if out_rows else [()] * len(COLUMNS)
    data = dict(zip(COLUMNS, columns, strict=True))
    return pd.DataFrame({
        "cpts": pd.Series(data["cpts"], dtype="str"),
        "cpts_id": pd.Series(data["cpts_id"], dtype="str"),
        "insee": pd.Series(data["insee"], dtype="str"),
        "nom": pd.Series(data["nom"], dtype="str"),
        "share": pd.Series(data["share"], dtype="float64"),
        "status": pd.Series(pd.Categorical(data["status"], dtype=STATUS_DTYPE)),
        "status_date": pd.Series(
            [pd.NaT if d is None else d for d in data["status_date"]], dtype="datetime64[ns]"
        ),
        "source": pd.Series(data["source"], dtype="str"),
        "row": pd.Series(data["row"], dtype="int64"),
    })


def validate_table(
    table: RawTable, *, scope: set[str] | None = None, fuzzy: bool = False,
    trust_codes: bool = False,
) -> pd.DataFrame:
    """Check a raw table (long or wide form) and return its membership table.

    Parameters
    ----------
    table : RawTable
        Header and rows as read from a file (or built from a DataFrame by :func:`frame_table`).
    scope : set of str, optional
        Départements where names are looked for on rows that give none.
    fuzzy : bool
        Accept a single close match for a misspelt name, with a warning.
    trust_codes : bool
        On a row giving an INSEE code and a name that designate different communes, use the
        code with a warning (default: a problem showing both, since a postal code typed as an
        INSEE code is often another commune's code).

    Returns
    -------
    pandas.DataFrame
        The membership table; ``attrs`` holds ``form`` (``"long"`` or ``"wide"``),
        ``ignored_columns`` (a list of str), ``n_cpts``, ``n_communes``, ``cog_year`` and
        ``sheet`` when the table comes from a workbook.

    Raises
    ------
    TerritoryError
        Listing every problem with its row, column and value.
    InputError
        When the table itself cannot be read (missing columns, no rows).
    """
    report = Report(table.source)
    cols, ignored = _map_columns(table.header, table.source, ["cpts", "commune"],
                                 list(_ALIASES), table.sheets_note)
    if table.empty:
        note = "" if table.sheets_note is None else f"; {table.sheets_note}"
        raise InputError(
            f"{table.source}: the file has a header (row {table.header_row}) but no data rows"
            f"{note}"
        )
    if table.frame is not None:
        fast = _fast_table(table, cols)
        if fast is not None:
            fast.attrs = {"form": "long", "ignored_columns": ignored}
            return finish(fast)
    entries, members, wide = _table_members(table, cols, scope=scope, fuzzy=fuzzy, report=report,
                                            trust_codes=trust_codes)
    titles = {c: table.header[i] for c, i in cols.items()}
    groups = _group_cpts(entries, titles, report)
    members = _check_members(members, report)
    report.raise_problems()
    report.warn()
    frame = members_frame(members, groups)
    frame.attrs = {"form": "wide" if wide else "long", "ignored_columns": ignored}
    if table.sheet is not None:
        frame.attrs["sheet"] = table.sheet
    return finish(frame)


def _unique_map(values: pd.Series, parse: Callable[[Any], object]) -> pd.Series | None:
    """``parse`` applied to each distinct value (None when one fails: the careful path reports)."""
    codes, uniques = pd.factorize(values)
    out = []
    for value in uniques:
        try:
            out.append(parse(value))
        except (ValueError, InputError):
            return None
    mapped = np.empty(len(out), dtype=object)
    mapped[:] = out
    return pd.Series(mapped[codes], index=values.index)


def _unique_codes(values: pd.Series | None, parse: Callable[[Any], object]
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """``parse`` applied to each distinct value, as codes and values (None when one fails).

    Returns a code per row (-1: parsed to None) and the distinct parsed values; None when a value
    does not parse (the careful path reports it).
    """
    assert values is not None
    codes, uniques = pd.factorize(values)
    index: dict[object, int] = {}
    at = np.empty(len(uniques) + 1, dtype=np.int64)
    at[-1] = -1  # a missing cell (code -1) has no value
    for i, value in enumerate(uniques):
        try:
            parsed = parse(value)
        except (ValueError, InputError):
            return None
        at[i] = -1 if parsed is None or parsed is pd.NaT else index.setdefault(parsed, len(index))
    distinct = np.empty(len(index), dtype=object)
    distinct[:] = list(index)
    return at[codes], distinct


_FAST_CODE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")


def _fast_table(table: RawTable, cols: dict[str, int]) -> pd.DataFrame | None:
    """The membership table of a clean long-form table of codes, vectorised.

    Returns None as soon as anything needs the careful, row-by-row validator: a name to resolve,
    a code that is not a current commune, a value to report or warn about, a CPTS-level
    conflict, a duplicate. The careful validator then gives the exact messages; the result is
    the same either way.
    """
    f = table.frame
    assert f is not None
    if "insee" not in cols or "commune" in cols or "commune_name" in cols:
        return None
    width = len(table.header)
    if f.shape[1] > width and (f.iloc[:, width:] != "").any().any():
        return None
    if f.shape[1] < width:
        return None

    def col(name: str) -> pd.Series | None:
        return f.iloc[:, cols[name]] if name in cols else None

    cpts = col("cpts")
    insee = col("insee")
    assert cpts is not None and insee is not None
    if (cpts == "").any() or (insee == "").any():
        return None
    if pc.any(pc.match_substring_regex(pa.array(cpts, type=pa.large_string()),
                                       r"\s\s|[\x{a0}\x{202f}\t]")).as_py():
        cpts = cpts.str.replace(r"[\s\u00a0\u202f]+", " ", regex=True).str.strip()
    codes_arr = pa.array(insee, type=pa.large_string())
    if not pc.all(pc.match_substring_regex(codes_arr, r"^(\d{5}|2[AB]\d{3})$")).as_py():
        insee = insee.str.replace(r"\s+", "", regex=True).str.upper()
        insee = insee.str.replace(r"^(\d{4,5})\.0+$", r"\1", regex=True)
        insee = insee.where(insee.str.len() != 4, "0" + insee)
        if not insee.str.match(_FAST_CODE).all():
            return None
        codes_arr = pa.array(insee, type=pa.large_string())
    where = pc.index_in(codes_arr, value_set=_code_set())
    if where.null_count:
        return None  # a former code: resolved with a warning by the careful path
    keys = _unique_map(cpts, slug)
    if keys is None:
        return None
    given_ids = col("cpts_id")
    status = _unique_codes(col("status"), normalize_status) if "status" in cols else None
    dates = (_unique_codes(col("status_date"), _to_timestamp) if "status_date" in cols
             else None)
    shares = _unique_map(col("share"), parse_share) if "share" in cols else None
    if ("status" in cols and status is None) or ("status_date" in cols and dates is None) or (
            "share" in cols and shares is None):
        return None
    if "departement" in cols:
        deps = _unique_map(col("departement"), lambda v: None if _is_empty(v)
                           else frozenset(_parse_departements(v)))
        if deps is None:
            return None
        dep_of = insee.str[:2].where(~insee.str.startswith("97"), insee.str[:3])
        if any(d is not None and c not in d for d, c in zip(deps, dep_of, strict=True)):
            return None
    # one spelling, one id, one status, one date per CPTS; one CPTS per id; no duplicate (all on
    # integer codes: a missing id, status or date (-1) agrees with any)
    group, group_keys = pd.factorize(keys)
    k = len(group_keys)
    if not _one_per_group(group, pd.factorize(cpts)[0]):
        return None
    label = np.asarray(group_keys, dtype=object)  # a CPTS' id: the given one, else its key
    if given_ids is not None:
        id_codes, id_values = pd.factorize(given_ids)
        id_codes[np.isin(id_codes, np.flatnonzero(np.asarray(id_values, dtype=object) == ""))] = -1
        if not _agree(group, id_codes):
            return None
        gid = _per_group(group, id_codes, k)
        label = np.where(gid >= 0, np.asarray(id_values, dtype=object)[gid], label)
    per_cpts = {}  # the status and the date of each CPTS (None: not given)
    for name, parsed in (("status", status), ("date", dates)):
        per_cpts[name] = np.full(k, None, dtype=object)
        if parsed is not None:
            if not _agree(group, parsed[0]):
                return None
            at = _per_group(group, parsed[0], k)
            per_cpts[name][at >= 0] = parsed[1][at[at >= 0]]
    if len(set(label.tolist())) != k:
        return None  # one id for two CPTS: the careful path reports it
    code_at = where.to_numpy(zero_copy_only=False).astype(np.int64)
    n_codes = len(_code_set())
    pair = group.astype(np.int64) * n_codes + code_at
    if len(np.unique(pair)) != len(pair):
        return None
    city = _city_at()[code_at]  # a CPTS listing both a city and one of its arrondissements
    if (city >= 0).any() and np.isin(group[city >= 0] * n_codes + city[city >= 0], pair).any():
        return None
    share = (pd.Series([v[0] for v in shares], index=f.index) if shares is not None
             else pd.Series(1.0, index=f.index))
    if shares is not None:
        given = pd.Series([v[1] for v in shares], index=f.index)
        per_commune = pd.DataFrame({"c": insee, "s": share, "g": given})
        totals = per_commune.groupby("c").agg(n=("s", "size"), s=("s", "sum"), g=("g", "any"))
        if ((totals["n"] > 1) & totals["g"] & (totals["s"] > 1 + 1e-6)).any():
            return None  # commune claimed more than whole: the careful path warns

    source = col("source")
    status_codes = pd.Categorical(per_cpts["status"], dtype=STATUS_DTYPE).codes[group]
    date_values = pd.Series(pd.to_datetime(pd.Series(per_cpts["date"], dtype=object)),
                            dtype="datetime64[ns]").to_numpy()[group]
    return pd.DataFrame({
        "cpts": _str_series(cpts),
        "cpts_id": pd.Series(pd.array(label, dtype="str").take(group)),
        "insee": _str_series(insee),
        "nom": pd.Series(pd.array(pc.take(_name_array(), where), dtype="str")),
        "share": pd.Series(share.to_numpy(dtype=float), dtype="float64"),
        "status": pd.Series(pd.Categorical.from_codes(status_codes, dtype=STATUS_DTYPE)),
        "status_date": pd.Series(date_values, dtype="datetime64[ns]"),
        "source": pd.Series(source.where(source != "", None).to_numpy()
                            if source is not None else [None] * len(f), dtype="str"),
        "row": pd.Series(f.index.to_numpy(dtype="int64")),
    })


def _str_series(s: pd.Series) -> pd.Series:
    """A text column as a ``str`` Series on a fresh range index (its Arrow data when it has)."""
    if s.dtype == "str":
        return pd.Series(s.array, copy=False)
    return pd.Series(s.to_numpy(), dtype="str")


def _agree(group: np.ndarray, codes: np.ndarray) -> bool:
    """Whether the rows of each group that have a value (code >= 0) all have the same."""
    has = codes >= 0
    return _one_per_group(group[has], codes[has])


def _per_group(group: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """The code (-1: none) of each of the ``k`` groups, from its rows with one (they agree)."""
    out = np.full(k, -1, dtype=np.int64)
    has = codes >= 0
    out[group[has]] = codes[has]
    return out


@lru_cache(maxsize=1)
def _city_at() -> np.ndarray:
    """For each code of :func:`_code_set`, the position of its city (arrondissements), else -1."""
    out = np.full(len(_code_set()), -1, dtype=np.int64)
    pairs = city_of_arrondissement()
    if pairs:
        arr = pc.index_in(pa.array(list(pairs), type=pa.large_string()),
                          value_set=_code_set()).to_numpy(zero_copy_only=False)
        city = pc.index_in(pa.array(list(pairs.values()), type=pa.large_string()),
                           value_set=_code_set()).to_numpy(zero_copy_only=False)
        ok = ~(np.isnan(arr.astype(float)) | np.isnan(city.astype(float)))
        out[arr[ok].astype(np.int64)] = city[ok].astype(np.int64)
    return out


def finish(frame: pd.DataFrame, **attrs: Any) -> pd.DataFrame:
    """Add the scalar ``attrs`` every membership table carries (counts, COG year)."""
    frame.attrs = {
        **frame.attrs,
        **attrs,
        "n_cpts": int(frame["cpts_id"].nunique()),
        "n_communes": int(frame["insee"].nunique()),
        "cog_year": cog_year(),
    }
    return frame


def frame_table(df: pd.DataFrame, name: str) -> RawTable:
    """A DataFrame's cells as a :class:`RawTable` (its first row is row 2, as in a file)."""
    header = [_text(c) for c in df.columns]
    rows = [
        (pos + 2, list(values))
        for pos, values in enumerate(df.itertuples(index=False, name=None))
    ]
    return RawTable(name, header, rows)


# ---------------------------------------------------------------------------------------------
# Tables already in memory
# ---------------------------------------------------------------------------------------------
def _str_column(s: pd.Series) -> pd.Series:
    """A text column as pandas' Arrow-backed ``str`` (no copy when it already is)."""
    return s if s.dtype == "str" else s.astype("str")


_FACTS: dict[int, tuple[Any, tuple[np.ndarray, pd.Index, bool]]] = {}


def _text_facts(s: pd.Series) -> tuple[np.ndarray, pd.Index, bool]:
    """Factorised codes, distinct values, and whether every value is a current INSEE code.

    Memoised on the column's Arrow data, which is immutable: a table validated once is checked
    again in microseconds (a planner calls several functions on the same table). The memo holds
    the Arrow array weakly and checks it is the very same object, so a changed column (pandas
    gives it new Arrow data) is always checked anew.
    """
    data = s.array.__arrow_array__() if s.dtype == "str" else None
    if data is not None:
        hit = _FACTS.get(id(data))
        if hit is not None and hit[0]() is data:
            return hit[1]
    codes, uniques = pd.factorize(s)
    arrow = pa.array(np.asarray(uniques, dtype=object), type=pa.large_string())
    current = bool(pc.all(pc.is_in(arrow, value_set=_code_set())).as_py())
    facts = (codes, uniques, current)
    if data is not None:
        import weakref

        key = id(data)

        def forget(_ref: object, k: int = key) -> None:
            _FACTS.pop(k, None)

        _FACTS[key] = (weakref.ref(data, forget), facts)
    return facts


def _one_per_group(groups: np.ndarray, values: np.ndarray) -> bool:
    """Whether every group (integer ids) has a single value (integer codes)."""
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    return not bool(((g[1:] == g[:-1]) & (v[1:] != v[:-1])).any())


def _looks_validated(t: pd.DataFrame) -> bool:
    """Tell whether ``t`` has the types :func:`validate_table` produces (the fast path).

    Vectorised: codes are checked against the bundle's with ``pyarrow.compute.is_in``, the
    (CPTS, commune) pairs and the CPTS-level attributes on factorised integer keys.
    """
    if not {"cpts", "cpts_id", "insee"} <= set(t.columns):
        return False
    if t["cpts"].isna().any() or t["insee"].isna().any() or t["cpts_id"].isna().any():
        return False
    if not all(pd.api.types.is_string_dtype(t[c]) or t[c].dtype == object
               for c in ("cpts", "cpts_id", "insee")):
        return False
    codes, uniques, current = _text_facts(t["insee"])
    if not current:
        return False
    if "share" in t.columns and (
        not pd.api.types.is_float_dtype(t["share"]) or t["share"].isna().any()
        or not ((t["share"] > 0) & (t["share"] <= 1)).all()
    ):
        return False
    if "status" in t.columns:
        status = t["status"]
        if not (isinstance(status.dtype, pd.CategoricalDtype)
                and list(status.dtype.categories) == list(STATUSES)):
            if not set(status.dropna().astype(str).unique()) <= set(STATUSES):
                return False
    if "status_date" in t.columns and not pd.api.types.is_datetime64_any_dtype(t["status_date"]):
        return False
    ids = _text_facts(t["cpts_id"])[0]
    key = ids.astype(np.int64) * (len(uniques) + 1) + codes
    if len(np.unique(key)) != len(key):  # a commune twice in a CPTS
        return False
    # one name, one status and one date per CPTS, one CPTS per name, as the validator requires
    names = _text_facts(t["cpts"])[0]
    if not (_one_per_group(ids, names) and _one_per_group(names, ids)):
        return False
    if "status" in t.columns:
        status = (t["status"].cat.codes.to_numpy() if isinstance(
            t["status"].dtype, pd.CategoricalDtype) else pd.factorize(
            t["status"], use_na_sentinel=False)[0])
        if not _one_per_group(ids, np.asarray(status, dtype=np.int64)):
            return False
    if "status_date" in t.columns:
        dates = t["status_date"].to_numpy().astype("datetime64[ns]").view("i8")
        if not _one_per_group(ids, dates):
            return False
    # a CPTS listing both a city and one of its arrondissements
    city_of = city_of_arrondissement()
    arms = np.flatnonzero(pc.is_in(pa.array(uniques, type=pa.large_string()),
                                   value_set=pa.array(list(city_of), type=pa.large_string()))
                          .to_numpy(zero_copy_only=False)).tolist()
    if arms:
        pos = {c: i for i, c in enumerate(uniques)}
        pairs = set(key.tolist())
        for i in arms:
            city = pos.get(city_of[uniques[i]])
            if city is None:
                continue
            for cid in np.unique(ids[codes == i]):
                if int(cid) * (len(uniques) + 1) + city in pairs:
                    return False
    return True


def as_membership(territories: pd.DataFrame, *, name: str = "DataFrame") -> pd.DataFrame:
    """Validate a membership table held in memory; return it with every column of the schema.

    A table with the types :func:`cpts_geo.read_territories` produces is taken as it is (fast);
    any other table (codes as numbers, shares as ``"50 %"``, free spellings of statuses, French
    dates...) goes through :func:`validate_table`, which normalises it or reports every problem
    with its row, instead of guessing.

    Parameters
    ----------
    territories : pandas.DataFrame
        At least ``cpts`` and ``insee`` (or a commune name column); optionally ``cpts_id``,
        ``share``, ``status``, ``status_date``, ``source``.
    name : str
        How to name the table in messages.

    Returns
    -------
    pandas.DataFrame
        A new frame with the columns :data:`COLUMNS` (``nom`` and ``row`` filled when absent),
        never the input itself; its ``attrs`` are the input's (scalars only).

    Raises
    ------
    TerritoryError, InputError
        As :func:`validate_table`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = as_membership(pd.DataFrame({"cpts": ["A"], "insee": [42218], "statut": ["aci"]}))
    >>> t[["cpts_id", "insee", "status"]].values.tolist()
    [['a', '42218', 'ACI signé']]
    """
    if not isinstance(territories, pd.DataFrame):
        raise InputError(
            f"`territories` was a {type(territories).__name__}; expected the table of "
            "cpts_geo.read_territories()"
        )
    if len(territories) == 0 and {"cpts", "insee"} <= set(territories.columns):
        empty = members_frame([], {})
        empty.attrs = {k: v for k, v in territories.attrs.items() if _scalar_attr(v)}
        return empty
    if _looks_validated(territories):
        t = territories.reset_index(drop=True)
        n = len(t)
        index = pd.RangeIndex(n)
        insee = _str_column(t["insee"])
        if "nom" in t.columns:
            nom = _str_column(t["nom"])
        else:
            current = _index().current
            codes, uniques = pd.factorize(insee)
            nom = pd.Series(np.asarray([current[c].nom for c in uniques], dtype=object)[codes],
                            index=index, dtype="str")
        if "status" in t.columns and t["status"].dtype == STATUS_DTYPE:
            status = t["status"]
        elif "status" in t.columns:
            status = pd.Series(pd.Categorical(t["status"].astype(object), dtype=STATUS_DTYPE),
                               index=index)
        else:
            status = pd.Series(pd.Categorical([None] * n, dtype=STATUS_DTYPE), index=index)
        if "status_date" in t.columns and t["status_date"].dtype == "datetime64[ns]":
            status_date = t["status_date"]
        elif "status_date" in t.columns:
            status_date = pd.Series(pd.to_datetime(t["status_date"]).dt.as_unit("ns"),
                                    index=index)
        else:
            status_date = pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
        out = pd.DataFrame({
            "cpts": _str_column(t["cpts"]),
            "cpts_id": _str_column(t["cpts_id"]),
            "insee": insee,
            "nom": nom,
            "share": (t["share"].astype("float64") if "share" in t.columns
                      else pd.Series(1.0, index=index)),
            "status": status,
            "status_date": status_date,
            "source": (_str_column(t["source"]) if "source" in t.columns
                       else pd.Series(pd.NA, index=index, dtype="str")),
            "row": (t["row"].astype("int64") if "row" in t.columns
                    else pd.Series(np.arange(2, n + 2, dtype="int64"), index=index)),
        }, copy=False)
        out.attrs = {k: v for k, v in territories.attrs.items() if _scalar_attr(v)}
        return out
    frame = validate_table(frame_table(territories.reset_index(drop=True), name))
    frame.attrs = {**{k: v for k, v in territories.attrs.items() if _scalar_attr(v)},
                   **frame.attrs}
    return frame


def _scalar_attr(value: object) -> bool:
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    return isinstance(value, list | tuple) and all(isinstance(v, str | int | float)
                                                   for v in value)
