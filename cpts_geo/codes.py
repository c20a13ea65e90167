"""INSEE codes and commune names: normalisation and resolution to current communes.

Planners keep commune lists in spreadsheets and press releases. Spreadsheets turn ``01001`` into
``1001`` (or ``1001.0``) and press releases write ``St-Chamond`` or ``L’Horme``. This module turns
all of that into current INSEE codes of the bundled COG, and refuses, with the closest
candidates, what it cannot resolve with certainty.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._data import bundle_path, manifest
from ._text import fold
from .errors import (
    AmbiguousCommuneError,
    InvalidInseeCodeError,
    UnknownCommuneError,
    public,
    warn,
)
from .geography import normalize_departements

__all__ = [
    "CodeMatch",
    "NameMatch",
    "commune_departement",
    "commune_name",
    "match_name",
    "name_key",
    "normalize_insee",
    "resolve_code",
    "resolve_codes",
    "resolve_communes",
]

_CODE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_FLOAT_CODE = re.compile(r"^(\d{4,5})\.0*$")
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_APOSTROPHES = re.compile(r"[’'`´‘ʼ′]")
_SEPARATORS = re.compile(r"[-‐‑–—_.,;/()\"«»]+")
_ARTICLES = ("le", "la", "les", "l'", "aux", "las", "los")
_TRAILING_ARTICLE = re.compile(r"^(.*?)\s*\((le|la|les|l['’]|aux|las|los)\)\s*$", re.IGNORECASE)
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "sts": "saints", "stes": "saintes"}
_PLM_NAMES = {"75056": "paris", "69123": "lyon", "13055": "marseille"}


# ---------------------------------------------------------------------------------------------
# Codes
# ---------------------------------------------------------------------------------------------
def normalize_insee(value: object) -> str:
    """Normalise one INSEE commune code as spreadsheets and users write it.

    Accepts the forms spreadsheets produce: ``1001`` or ``1001.0`` for ``01001`` (a lost leading
    zero), ``"2a004"`` for ``2A004``, surrounding or embedded spaces. The result is a syntactically
    valid code; whether it exists is checked by :func:`resolve_codes`.

    Parameters
    ----------
    value : str, int or float
        The code as read from a file or typed.

    Returns
    -------
    str
        A 5-character code: 5 digits, or ``2A``/``2B`` and 3 digits.

    Raises
    ------
    InvalidInseeCodeError
        If the value cannot be a commune code (empty, wrong length, letters...).

    Examples
    --------
    >>> normalize_insee(1001), normalize_insee("1001.0"), normalize_insee(" 2a004 ")
    ('01001', '01001', '2A004')
    >>> normalize_insee("42 218")
    '42218'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        raise InvalidInseeCodeError("empty INSEE code: expected 5 characters such as 42218")
    if isinstance(value, bool):
        raise InvalidInseeCodeError(f"{value!r} is not an INSEE code")
    if isinstance(value, int | np.integer):
        text = str(int(value))
    elif isinstance(value, float | np.floating):
        if not float(value).is_integer():
            raise InvalidInseeCodeError(f"{value!r} is not an INSEE code (not a whole number)")
        text = str(int(value))
    else:
        text = _SPACES.sub("", str(value)).upper()
    m = _FLOAT_CODE.match(text)
    if m:
        text = m.group(1)
    if text.isdigit() and len(text) == 4:
        text = "0" + text
    if not _CODE.match(text):
        raise InvalidInseeCodeError(
            f"{value!r} is not an INSEE commune code: expected 5 characters, the département "
            "then the commune (42218, 01001, 2A004); a code that lost its leading zero in a "
            "spreadsheet (1001) is accepted"
        )
    return text


@dataclass(frozen=True)
class _Unit:
    insee: str
    nom: str
    departement: str
    kind: str  # commune, arrondissement, deleguee, associee, ancienne
    current: str  # the current commune (itself for current units)


@dataclass
class _Index:
    current: dict[str, _Unit] = field(default_factory=dict)
    former: dict[str, list[_Unit]] = field(default_factory=dict)
    by_full: dict[str, list[_Unit]] = field(default_factory=lambda: defaultdict(list))
    by_loose: dict[str, list[_Unit]] = field(default_factory=lambda: defaultdict(list))


@lru_cache(maxsize=1)
def _code_set() -> pa.Array:
    """Every current code of the bundle (communes and arrondissements), for vectorised checks."""
    table = pq.read_table(bundle_path("communes.parquet"), columns=["insee"])
    return pc.cast(table.column("insee").combine_chunks(), pa.large_string())


@lru_cache(maxsize=1)
def _name_array() -> pa.Array:
    """Official names aligned on :func:`_code_set`."""
    table = pq.read_table(bundle_path("communes.parquet"), columns=["nom"])
    return pc.cast(table.column("nom").combine_chunks(), pa.large_string())


@lru_cache(maxsize=1)
def _index() -> _Index:
    table = pq.read_table(bundle_path("communes.parquet"),
                          columns=["insee", "nom", "kind", "parent", "departement"])
    com = table.to_pandas()
    idx = _Index()
    for insee, nom, kind, parent, dep in com.itertuples(index=False):
        unit = _Unit(insee, nom, dep, kind, insee)
        idx.current[insee] = unit
        for key in _name_keys(nom, insee=insee, parent=parent):
            idx.by_full[key[0]].append(unit)
            idx.by_loose[key[1]].append(unit)
    former = pq.read_table(bundle_path("former_communes.parquet"),
                           columns=["insee", "nom", "kind", "current"]).to_pandas()
    for insee, nom, kind, current in former.itertuples(index=False):
        cur = idx.current.get(current)
        if cur is None or not isinstance(nom, str):
            if cur is not None:
                idx.former.setdefault(insee, []).append(
                    _Unit(insee, "", cur.departement, kind, current)
                )
            continue
        unit = _Unit(insee, nom, cur.departement, kind, current)
        idx.former.setdefault(insee, []).append(unit)
        full, loose = name_key(nom, keep_article=True), name_key(nom)
        idx.by_full[full].append(unit)
        idx.by_loose[loose].append(unit)
    return idx


@dataclass(frozen=True)
class CodeMatch:
    """The outcome of resolving one INSEE code (never raised: see ``problem``).

    Attributes
    ----------
    code : str or None
        The current code, None when the value cannot be resolved.
    problem : str or None
        Why it cannot be resolved.
    note : str or None
        How it was resolved when it is not a current code (``"14654 (Saint-Pierre-sur-Dives,
        commune déléguée) -> 14654 (Saint-Pierre-en-Auge)"``).
    """

    code: str | None
    problem: str | None = None
    note: str | None = None


def resolve_code(value: object) -> CodeMatch:
    """Resolve one INSEE code to a current commune or municipal arrondissement.

    Parameters
    ----------
    value : str, int or float
        A code as read from a file (see :func:`normalize_insee`).

    Returns
    -------
    CodeMatch
        The current code, or the problem; a note when the code was that of a former commune.

    Examples
    --------
    >>> resolve_code("42218").code, resolve_code(1001).code
    ('42218', '01001')
    >>> resolve_code("42999").problem is not None
    True
    """
    try:
        code = normalize_insee(value)
    except InvalidInseeCodeError as exc:
        return CodeMatch(None, str(exc))
    idx = _index()
    if code in idx.current:
        return CodeMatch(code)
    targets = {u.current for u in idx.former.get(code, [])}
    if len(targets) == 1:
        target = targets.pop()
        former = idx.former[code][0]
        label = f"{former.nom}, {_KIND_LABEL[former.kind]}" if former.nom else _KIND_LABEL[
            former.kind]
        return CodeMatch(target, None,
                         f"{code} ({label}) -> {target} ({idx.current[target].nom})")
    hint = " (codes 20xxx are pre-1976 Corsican codes: use 2A/2B)" if code[:2] == "20" else ""
    return CodeMatch(None, f"unknown INSEE code {code}: no current, delegated, associated or "
                           f"merged commune has this code in the COG {cog_year()}{hint}")


@public
def resolve_codes(codes: Iterable[object], *, what: str = "codes") -> list[str]:
    """Resolve INSEE codes to current communes (or municipal arrondissements).

    Codes are first normalised (:func:`normalize_insee`). The code of a commune déléguée,
    associée or of a commune merged since resolves to the current commune, with a
    :class:`~cpts_geo.errors.CptsGeoWarning`. A code kept by a commune nouvelle is the commune
    nouvelle (69149 is Oullins-Pierre-Bénite, although the commune déléguée Oullins has the same
    code).

    Parameters
    ----------
    codes : iterable
        Codes as strings or numbers.
    what : str
        How to name the input in messages (e.g. a file name).

    Returns
    -------
    list of str
        Current codes, in input order.

    Raises
    ------
    InvalidInseeCodeError
        If a value is not a code.
    UnknownCommuneError
        If a code matches no current or former commune; every offender is listed.

    Examples
    --------
    >>> resolve_codes(["42218", 1001, "69383"])
    ['42218', '01001', '69383']
    """
    out: list[str] = []
    unknown: list[str] = []
    changed: list[str] = []
    for value in codes:
        normalize_insee(value)  # a malformed value raises InvalidInseeCodeError
        m = resolve_code(value)
        if m.code is None:
            unknown.append(str(m.problem))
            continue
        if m.note is not None:
            changed.append(m.note)
        out.append(m.code)
    if unknown:
        raise UnknownCommuneError(
            f"{len(unknown)} unknown INSEE code(s) in {what}: {'; '.join(unknown)}"
        )
    if changed:
        warn(f"{len(changed)} code(s) in {what} are not current communes and were resolved: "
             + "; ".join(changed))
    return out


def commune_name(code: str) -> str:
    """Official name of a current commune or arrondissement code ("" when unknown).

    Examples
    --------
    >>> commune_name("42110")
    "L'Horme"
    """
    unit = _index().current.get(code)
    return "" if unit is None else unit.nom


def commune_departement(code: str) -> str | None:
    """Département of a current code (None when unknown)."""
    unit = _index().current.get(code)
    return None if unit is None else unit.departement


_KIND_LABEL = {
    "deleguee": "commune déléguée",
    "associee": "commune associée",
    "ancienne": "merged commune",
    "commune": "commune",
    "arrondissement": "arrondissement",
}


def cog_year() -> int:
    """COG year of the bundled commune list that codes and names are resolved against."""
    return int(manifest()["cog_year"])


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------
def name_key(name: str, *, keep_article: bool = False) -> str:
    """Reduce a commune name to a comparison key.

    Insensitive to case, accents, typographic apostrophes, hyphens and spaces, ``St``/``Ste``
    abbreviations and (unless ``keep_article``) a leading article (Le, La, Les, L'), also when
    written after the name as INSEE files do ("Horme (L')").

    Parameters
    ----------
    name : str
        A commune name as published.
    keep_article : bool
        Keep a leading article in the key.

    Returns
    -------
    str
        The key.

    Examples
    --------
    >>> name_key("L’Horme"), name_key("St-Chamond"), name_key("Grand-Croix (La)")
    ('horme', 'saint chamond', 'grand croix')
    """
    text = str(name)
    trailing = _TRAILING_ARTICLE.match(text)  # INSEE style: "Horme (L')", "Grand-Croix (La)"
    if trailing:
        article = trailing.group(2)
        sep = "" if article[-1] in "'’" else " "
        text = f"{article}{sep}{trailing.group(1)}"
    text = fold(text)
    text = _APOSTROPHES.sub("' ", text)
    text = _SEPARATORS.sub(" ", text)
    tokens = text.split()
    tokens = [_ABBREVIATIONS.get(t, t) for t in tokens]
    if not keep_article and len(tokens) > 1 and tokens[0] in _ARTICLES:
        tokens = tokens[1:]
    return " ".join(tokens)


def _name_keys(nom: str, *, insee: str, parent: str | None) -> list[tuple[str, str]]:
    keys = [(name_key(nom, keep_article=True), name_key(nom))]
    if isinstance(parent, str):  # "Lyon 3e Arrondissement" -> also "Lyon 3e", "Lyon 3"...
        city = _PLM_NAMES[parent]
        n = int(re.search(r"\d+", nom).group())  # type: ignore[union-attr]
        variants = [f"{city} {n}", f"{city} {n}e", f"{city} {n}eme", f"{city} {n}e arrondissement",
                    f"{city} {n} arrondissement", f"{city} {n:02d}"]
        if n == 1:
            variants += [f"{city} 1er", f"{city} 1er arrondissement"]
        keys += [(v, v) for v in variants]
    return keys


@dataclass(frozen=True)
class NameMatch:
    """The outcome of resolving one name (used by the territory reader for row-level reports)."""

    name: str
    code: str | None
    status: str  # "exact", "former", "close", "unknown", "ambiguous"
    message: str
    candidates: tuple[str, ...] = ()


def _in_scope(units: Iterable[_Unit], deps: set[str] | None) -> list[_Unit]:
    return [u for u in units if deps is None or u.departement in deps]


def _describe(u: _Unit, idx: _Index) -> str:
    if u.kind in ("commune", "arrondissement"):
        return f"{u.nom} ({u.insee}, {u.departement})"
    cur = idx.current[u.current]
    return f"{u.nom} ({_KIND_LABEL[u.kind]} {u.insee}, now {cur.nom} {cur.insee})"


@lru_cache(maxsize=64)
def _pool(deps: frozenset[str] | None) -> dict[str, _Unit]:
    """Name keys of the units in scope, for the closest-name suggestions (built once a scope)."""
    idx = _index()
    pool: dict[str, _Unit] = {}
    for k, units in idx.by_loose.items():
        for u in _in_scope(units, None if deps is None else set(deps)):
            pool.setdefault(k, u)
    return pool


def _closest(key: str, deps: set[str] | None, idx: _Index, n: int = 3) -> list[str]:
    pool = _pool(None if deps is None else frozenset(deps))
    keys = difflib.get_close_matches(key, list(pool), n=n, cutoff=0.6)
    return [_describe(pool[k], idx) for k in keys]


def match_name(
    name: object, departements: set[str] | None = None, *, fuzzy: bool = False
) -> NameMatch:
    """Resolve one commune name; never raises for an unknown or ambiguous name (see status).

    Parameters
    ----------
    name : str
        A commune name.
    departements : set of str, optional
        Restrict candidates to these (normalised) département codes.
    fuzzy : bool
        Accept a single close match (similarity >= 0.85) with status ``"close"``.

    Returns
    -------
    NameMatch
        The code (None if unresolved), a status and a message for reports.
    """
    idx = _index()
    text = "" if name is None else str(name).strip()
    if not text or text.lower() == "nan":
        return NameMatch(text, None, "unknown", "empty commune name")
    full, loose = name_key(text, keep_article=True), name_key(text)
    for table, key in ((idx.by_full, full), (idx.by_loose, loose)):
        units = _in_scope(table.get(key, []), departements)
        current = {u.insee: u for u in units if u.kind in ("commune", "arrondissement")}
        if len(current) == 1:
            u = next(iter(current.values()))
            return NameMatch(text, u.insee, "exact", f"{text!r} is {_describe(u, idx)}")
        if len(current) > 1:
            cands = tuple(_describe(u, idx) for u in current.values())
            return NameMatch(
                text, None, "ambiguous",
                f"{text!r} matches {len(current)} communes: {'; '.join(cands)}; give the INSEE "
                "code or the département",
                cands,
            )
        olds = {u.current: u for u in units}
        if len(olds) == 1:
            u = next(iter(olds.values()))
            cur = idx.current[u.current]
            return NameMatch(
                text, cur.insee, "former",
                f"{text!r} is a former name: {_describe(u, idx)}; counted as {cur.nom} "
                f"({cur.insee})",
            )
        if len(olds) > 1:
            cands = tuple(_describe(u, idx) for u in olds.values())
            return NameMatch(text, None, "ambiguous",
                             f"{text!r} is a former name of several communes: {'; '.join(cands)}",
                             cands)
    cands = tuple(_closest(loose, departements, idx))
    if fuzzy and cands:
        pool = {name_key(u.nom): u for k, us in idx.by_loose.items()
                for u in _in_scope(us, departements) if u.kind in ("commune", "arrondissement")}
        best = difflib.get_close_matches(loose, list(pool), n=2, cutoff=0.85)
        if len(best) == 1 or (
            len(best) == 2
            and difflib.SequenceMatcher(None, loose, best[0]).ratio()
            > difflib.SequenceMatcher(None, loose, best[1]).ratio()
        ):
            u = pool[best[0]]
            return NameMatch(text, u.insee, "close",
                             f"{text!r} matched approximately to {_describe(u, idx)}")
    scope = "" if departements is None else f" in département(s) {', '.join(sorted(departements))}"
    hint = f"; closest: {'; '.join(cands)}" if cands else ""
    return NameMatch(text, None, "unknown", f"{text!r} is not a commune name{scope}{hint}", cands)


@public
def resolve_communes(
    names: Iterable[str],
    departements: str | int | Sequence[str | int] | None = None,
    *,
    fuzzy: bool = False,
) -> list[str]:
    """Turn published commune names into current INSEE codes, in input order.

    Matching ignores case, accents, leading articles (Le, La, Les, L'), typographic apostrophes,
    hyphens and spaces, and expands ``St``/``Ste``. A name with its article is matched first
    (``Les Salles`` before ``Salles``). The former name of a merged commune resolves to the
    commune nouvelle with a warning. Arrondissements resolve from ``Lyon 3e``, ``Paris 12``,
    ``Marseille 1er arrondissement``...

    Parameters
    ----------
    names : iterable of str
        Commune names.
    departements : str, int or sequence, optional
        Département code(s) or name(s) where the communes are (strongly recommended: many
        names exist in several départements).
    fuzzy : bool
        Opt in to close matches (a single candidate with similarity >= 0.85), with a warning.

    Returns
    -------
    list of str
        INSEE codes in input order.

    Raises
    ------
    UnknownCommuneError
        If a name matches no commune; lists every offender with its closest candidates.
    AmbiguousCommuneError
        If a name matches several communes (and none is unknown).

    Examples
    --------
    >>> resolve_communes(["L’Horme", "St-Chamond", "Longes"], departements=["42", "69"])
    ['42110', '42207', '69119']
    """
    codes = normalize_departements(departements)
    deps = None if codes is None else set(codes)
    matches = [match_name(n, deps, fuzzy=fuzzy) for n in names]
    unknown = [m for m in matches if m.status == "unknown"]
    ambiguous = [m for m in matches if m.status == "ambiguous"]
    if unknown or ambiguous:
        msg = "; ".join(m.message for m in unknown + ambiguous)
        cls = UnknownCommuneError if unknown else AmbiguousCommuneError
        raise cls(f"{len(unknown) + len(ambiguous)} name(s) could not be resolved: {msg}")
    notes = [m.message for m in matches if m.status in ("former", "close")]
    if notes:
        warn(f"{len(notes)} name(s) resolved with care: " + "; ".join(notes))
    return [m.code for m in matches]  # type: ignore[misc]
