"""ACI size classes ("tailles") of a CPTS and the funding rules of each version of the agreement.

The *accord conventionnel interprofessionnel* (ACI) of 20 June 2019, amended by avenant 2 of
20 December 2021, funds a CPTS according to its size class. The classes and every amount a
public source establishes live in one place, a versioned rules file shipped in the package
(``cpts_geo/data/aci_rules.json``): each version with its dates, its classes and its amounts,
each amount with its source (title, date, URL, quote) and whether the source prints it for that
class (``published``) or it is our reading of what the source prints (``derived``). An amount no
source establishes is absent, never guessed. :data:`SIZE_CLASSES` is read from that file.

Sources phrase the classes as taille 1 "moins de 40 000 habitants", taille 2 "entre 40 000 et
80 000", taille 3 "entre 80 000 et 175 000", taille 4 "plus de 175 000". At the bounds:

* exactly **40,000** inhabitants is taille 2: taille 1 is "moins de 40 000" in every source
  (derived by elimination);
* exactly **175,000** is taille 3: taille 4 is "plus de 175 000" in every source (derived by
  elimination);
* exactly **80,000** is *not settled by the texts* (both neighbouring classes say "entre"):
  cpts_geo's convention puts it in taille 2, and :func:`size_class_basis` says so wherever it
  matters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.rules import RULES_FILE, read_aci_rules
from ..membership import parse_date

__all__ = [
    "SIZE_CLASSES",
    "AciRules",
    "AciVersion",
    "Amount",
    "SizeClass",
    "default_rules",
    "parse_rules",
    "size_class",
    "size_class_basis",
    "size_classes",
]

SCHEMA_VERSION = 1
BASES = ("published", "derived")
BOUND_BASES = ("published", "derived", "convention")


class SizeClass(NamedTuple):
    """One ACI size class: ``low`` (inclusive unless the class below includes it) to ``high``."""

    taille: int
    low: float
    high: float  #: ``inf`` for the largest class
    high_inclusive: bool
    text: str  #: how the sources phrase it


@dataclass(frozen=True)
class Amount:
    """One amount of a version of the rules, for one size class, with its source."""

    item: str
    taille: int
    amount_eur: float
    basis: str  #: "published" or "derived"
    source: str  #: an id of :attr:`AciRules.sources`
    quote: str
    note: str = ""


@dataclass(frozen=True)
class AciVersion:
    """A version of the agreement (the ACI of 2019, an avenant): its classes and amounts."""

    id: str
    title: str
    signed: pd.Timestamp | None
    applies_from: pd.Timestamp
    applies_from_basis: str  #: "published" or "convention"
    applies_from_note: str
    size_classes: tuple[SizeClass, ...]
    amounts: tuple[Amount, ...]

    def amount(self, item: str, taille: int | None) -> Amount | None:
        """The amount of ``item`` for a size class, None when no source establishes it."""
        return next((a for a in self.amounts if a.item == item and a.taille == taille), None)


@dataclass(frozen=True)
class AciRules:
    """A parsed, checked rules file (:func:`parse_rules`)."""

    rules_id: str
    name: str  #: the file it was read from, for messages and attributions
    versions: tuple[AciVersion, ...]  #: in order of ``applies_from``
    items: Mapping[str, Mapping[str, Any]]  #: item id -> ``label``, ``description``
    sources: Mapping[str, Mapping[str, Any]]  #: source id -> ``title``, ``date``, ``url``...
    bounds: Mapping[float, tuple[int, str, str]]  #: population -> (taille, basis, reason)
    data: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def latest(self) -> AciVersion:
        """The newest version."""
        return self.versions[-1]

    def version_at(self, date: pd.Timestamp | None) -> tuple[AciVersion | None, str]:
        """The version that applies at a status date, and why (in words).

        The latest version whose ``applies_from`` is on or before the date; the latest version
        when there is no date; None when the date is before the first version applied.

        Examples
        --------
        >>> rules = default_rules()
        >>> v, why = rules.version_at(pd.Timestamp("2020-07-09"))
        >>> v.id, why
        ('aci-2019', 'in force on the status date 2020-07-09')
        >>> rules.version_at(None)[1]
        'no status date: the latest version'
        """
        if date is None or pd.isna(date):
            return self.latest, "no status date: the latest version"
        day = pd.Timestamp(date).date().isoformat()
        applied = [v for v in self.versions if v.applies_from <= date]
        if not applied:
            first = self.versions[0]
            return None, (f"the status date {day} is before the first version of the rules "
                          f"applied ({first.id}, {first.applies_from.date().isoformat()})")
        version = applied[-1]
        why = f"in force on the status date {day}"
        pending = [v for v in self.versions if v.signed is not None and v.signed <= date
                   < v.applies_from]
        if pending:
            p = pending[0]
            why += (f"; {p.id} was signed on {p.signed.date().isoformat()} but is applied "  # type: ignore[union-attr]
                    f"from {p.applies_from.date().isoformat()} ({p.applies_from_basis}: "
                    "its entry into force is not established)")
        return version, why

    def source_text(self, source_id: str) -> str:
        """A source as one line: title, publisher, date, URL."""
        s = self.sources[source_id]
        parts = [str(s.get("title") or source_id)]
        for key in ("publisher", "date", "url"):
            if s.get(key):
                parts.append(str(s[key]))
        return " — ".join(parts)


# ---------------------------------------------------------------------------------------------
# Parsing and checking a rules file
# ---------------------------------------------------------------------------------------------
def _date(value: object, where: str, problems: list[str]) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return parse_date(value, what=where)  # type: ignore[arg-type]
    except InputError as exc:
        problems.append(str(exc))
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _classes(raw: object, where: str, problems: list[str]) -> tuple[SizeClass, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: 'size_classes' must be a non-empty list")
        return ()
    out: list[SizeClass] = []
    low = 0.0
    for i, c in enumerate(raw):
        w = f"{where}, size class {i + 1}"
        if not isinstance(c, Mapping):
            problems.append(f"{w}: not an object")
            return ()
        last = i == len(raw) - 1
        if c.get("taille") != i + 1:
            problems.append(f"{w}: 'taille' must be {i + 1} (classes in order), not "
                            f"{c.get('taille')!r}")
        if _number(c.get("min")) != low:
            problems.append(f"{w}: 'min' must be {low:g}, the 'max' of the class below "
                            f"(classes leave no gap), not {c.get('min')!r}")
        high = _number(c.get("max"))
        if last:
            if c.get("max") is not None:
                problems.append(f"{w}: the largest class has no 'max' (null)")
            high = math.inf
        elif high is None or high <= low:
            problems.append(f"{w}: 'max' must be a number above {low:g}, not {c.get('max')!r}")
            return ()
        inclusive = c.get("max_inclusive")
        if not last and not isinstance(inclusive, bool):
            problems.append(f"{w}: 'max_inclusive' must be true or false (state the convention "
                            "when the sources do not settle it), not "
                            f"{inclusive!r}")
        if not last and c.get("max_inclusive_basis") not in BOUND_BASES:
            problems.append(f"{w}: 'max_inclusive_basis' must be one of {BOUND_BASES}, not "
                            f"{c.get('max_inclusive_basis')!r}")
        out.append(SizeClass(i + 1, low, high, bool(inclusive), str(c.get("text") or "")))
        low = high
    return tuple(out)


def _amounts(raw: object, where: str, classes: tuple[SizeClass, ...],
             items: Mapping[str, Any], sources: Mapping[str, Any],
             problems: list[str]) -> tuple[Amount, ...]:
    if not isinstance(raw, list):
        problems.append(f"{where}: 'amounts' must be a list")
        return ()
    out = []
    seen: set[tuple[str, int]] = set()
    tailles = {c.taille for c in classes}
    for i, a in enumerate(raw):
        w = f"{where}, amount {i + 1}"
        if not isinstance(a, Mapping):
            problems.append(f"{w}: not an object")
            continue
        item, taille, value = a.get("item"), a.get("taille"), _number(a.get("amount_eur"))
        bad = []
        if item not in items:
            bad.append(f"'item' {item!r} is not one of 'items' ({', '.join(items)})")
        if taille not in tailles:
            bad.append(f"'taille' {taille!r} is not a size class")
        if value is None or value <= 0:
            bad.append(f"'amount_eur' {a.get('amount_eur')!r} is not a positive number")
        if a.get("basis") not in BASES:
            bad.append(f"'basis' {a.get('basis')!r} is not one of {BASES}")
        if a.get("source") not in sources:
            bad.append(f"'source' {a.get('source')!r} is not one of 'sources' (every amount "
                       "names its source)")
        if not isinstance(a.get("quote"), str) or not a["quote"].strip():
            bad.append("'quote' is missing (every amount quotes its source)")
        if (item, taille) in seen:
            bad.append(f"{item!r} is given twice for taille {taille}")
        if bad:
            problems.append(f"{w}: " + "; ".join(bad))
            continue
        seen.add((str(item), int(taille)))  # type: ignore[arg-type]
        out.append(Amount(str(item), int(taille), float(value), str(a["basis"]),  # type: ignore[arg-type]
                          str(a["source"]), str(a["quote"]), str(a.get("note") or "")))
    return tuple(out)


def parse_rules(data: Mapping[str, Any], *, name: str = "rules") -> AciRules:
    """Check a rules file's content and return it parsed.

    Parameters
    ----------
    data : mapping
        The JSON object of a rules file (:func:`cpts_geo.io.rules.read_aci_rules`).
    name : str
        How to name it in messages.

    Returns
    -------
    AciRules

    Raises
    ------
    InputError
        Listing every problem: a size class with a gap or an unstated convention at a bound,
        an amount without source, quote or basis, a date that is not one...

    Examples
    --------
    >>> from cpts_geo.io.rules import read_aci_rules
    >>> rules = parse_rules(read_aci_rules())
    >>> [v.id for v in rules.versions]
    ['aci-2019', 'aci-avenant-2']
    >>> bad = read_aci_rules()
    >>> bad["versions"][0]["amounts"][0]["source"] = "a blog"
    >>> parse_rules(bad, name="mes_regles.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cpts_geo.errors.InputError: mes_regles.json: 1 problem: version 'aci-2019', amount 1: ...
    """
    problems: list[str] = []
    if not isinstance(data, Mapping) or data.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{name}: not a cpts_geo ACI rules file (expected 'schema_version': "
                         f"{SCHEMA_VERSION})")
    items = data.get("items")
    sources = data.get("sources")
    if not isinstance(items, Mapping) or not isinstance(sources, Mapping):
        raise InputError(f"{name}: 'items' and 'sources' must be objects")
    for sid, s in sources.items():
        if not isinstance(s, Mapping) or not s.get("title") or "date" not in s or "url" not in s:
            problems.append(f"source {sid!r}: needs a 'title', a 'date' and a 'url' (null when "
                            "there is none)")
    raw_versions = data.get("versions")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise InputError(f"{name}: 'versions' must be a non-empty list")
    versions = []
    for i, v in enumerate(raw_versions):
        if not isinstance(v, Mapping) or not isinstance(v.get("id"), str):
            problems.append(f"version {i + 1}: needs an 'id'")
            continue
        w = f"version {v['id']!r}"
        applies = _date(v.get("applies_from"), f"{w}: 'applies_from'", problems)
        if applies is None:
            problems.append(f"{w}: 'applies_from' (the date from which it applies) is missing")
            continue
        if v.get("applies_from_basis") not in ("published", "convention"):
            problems.append(f"{w}: 'applies_from_basis' must be 'published' or 'convention'")
        classes = _classes(v.get("size_classes"), w, problems)
        versions.append(AciVersion(
            id=v["id"], title=str(v.get("title") or v["id"]),
            signed=_date(v.get("signed"), f"{w}: 'signed'", problems),
            applies_from=applies, applies_from_basis=str(v.get("applies_from_basis")),
            applies_from_note=str(v.get("applies_from_note") or ""),
            size_classes=classes,
            amounts=_amounts(v.get("amounts"), w, classes, items, sources, problems),
        ))
    ids = [v.id for v in versions]
    if len(set(ids)) != len(ids):
        problems.append(f"version ids are not unique: {ids}")
    versions.sort(key=lambda v: v.applies_from)
    bounds: dict[float, tuple[int, str, str]] = {}
    conv = (data.get("conventions") or {}).get("size_class_bounds") or {}
    for key, b in conv.items():
        value = _number(float(key)) if str(key).replace(".", "", 1).isdigit() else None
        if value is None or not isinstance(b, Mapping) or b.get("basis") not in BOUND_BASES:
            problems.append(f"conventions.size_class_bounds[{key!r}]: expected a population and "
                            f"{{'taille', 'basis' in {BOUND_BASES}, 'reason'}}")
            continue
        for v in versions:
            if v.size_classes and size_class(value, v.size_classes) != b.get("taille"):
                problems.append(
                    f"conventions.size_class_bounds[{key!r}] says taille {b.get('taille')} but "
                    f"the classes of {v.id!r} give taille {size_class(value, v.size_classes)}")
        bounds[value] = (int(b["taille"]), str(b["basis"]), str(b.get("reason") or ""))
    if problems:
        n = len(problems)
        raise InputError(f"{name}: {n} problem{'s' if n > 1 else ''}: " + "; ".join(problems))
    return AciRules(rules_id=str(data.get("rules_id") or name), name=name,
                    versions=tuple(versions), items=dict(items), sources=dict(sources),
                    bounds=bounds, data=dict(data))


@lru_cache(maxsize=1)
def default_rules() -> AciRules:
    """The rules shipped in the package (``cpts_geo/data/aci_rules.json``), parsed once."""
    return parse_rules(read_aci_rules(), name=RULES_FILE)


# ---------------------------------------------------------------------------------------------
# Size classes
# ---------------------------------------------------------------------------------------------
def size_class(population: float | int | None,
               classes: Sequence[SizeClass] | None = None) -> int | None:
    """ACI size class (taille 1 to 4) of a CPTS of this population.

    Parameters
    ----------
    population : number or None
        Inhabitants of the CPTS territory.
    classes : sequence of SizeClass, optional
        The classes (default: :data:`SIZE_CLASSES`, from the shipped rules file).

    Returns
    -------
    int or None
        1 (< 40,000), 2 (40,000 to 80,000), 3 (over 80,000 up to 175,000), 4 (> 175,000);
        None when the population is missing or negative. Exactly 40,000 is taille 2 and exactly
        175,000 taille 3 (by elimination from the sources' "moins de 40 000" and "plus de
        175 000"); exactly 80,000 is taille 2 by cpts_geo's convention, which the sources do
        not settle (see :func:`size_class_basis`).

    See Also
    --------
    size_class_basis : how a population at a bound was placed.
    cpts_geo.aci_funding : the amounts of each class.

    Examples
    --------
    >>> size_class(11_000), size_class(40_000), size_class(80_000), size_class(175_001)
    (1, 2, 2, 4)
    """
    if population is None or pd.isna(population) or population < 0:
        return None
    for c in SIZE_CLASSES if classes is None else classes:
        if population < c.high or (population == c.high and c.high_inclusive):
            return c.taille
    return None  # pragma: no cover - the largest class has no upper bound


def size_classes(population: pd.Series | np.ndarray,
                 classes: Sequence[SizeClass] | None = None) -> pd.Series:
    """:func:`size_class` of many populations at once (nullable ``Int64``).

    Examples
    --------
    >>> size_classes(pd.Series([39_999, 40_000, 80_000, 80_001, 175_000, None])).tolist()
    [1, 2, 2, 3, 3, <NA>]
    """
    series = pd.Series(population)
    values = pd.to_numeric(series, errors="coerce").astype(float).to_numpy()
    out = np.zeros(len(values), dtype=np.int64)
    done = np.isnan(values) | (values < 0)
    for c in SIZE_CLASSES if classes is None else classes:
        hit = ~done & ((values < c.high) | ((values == c.high) & c.high_inclusive))
        out[hit] = c.taille
        done |= hit
    result = pd.array(out, dtype="Int64")
    result[out == 0] = pd.NA
    return pd.Series(result, index=series.index)


def size_class_basis(population: float | int | None, rules: AciRules | None = None) -> str:
    """How a population exactly at a class bound was placed; "" elsewhere.

    Examples
    --------
    >>> size_class_basis(58_578)
    ''
    >>> size_class_basis(80_000)[:60]
    'convention: NOT established by the texts: taille 2 is « entr'
    """
    if population is None or pd.isna(population):
        return ""
    found = (rules or default_rules()).bounds.get(float(population))
    if found is None:
        return ""
    _taille, basis, reason = found
    return f"{basis}: {reason}"


#: The size classes of the newest version of the shipped rules (``taille``, ``low``, ``high``,
#: ``high_inclusive``, ``text``); see the module's convention at the bounds.
SIZE_CLASSES: tuple[SizeClass, ...] = default_rules().latest.size_classes
