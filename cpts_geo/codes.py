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
    InputError,
    InvalidInseeCodeError,
    UnknownCommuneError,
    public,
    warn,
)
from .geography import arrondissements, normalize_departement, normalize_departements

__all__ = [
    "CodeMatch",
    "NameMatch",
    "commune_departement",
    "commune_name",
    "match_name",
    "name_key",
    "normalize_insee",
    "postal_code_communes",
    "postal_codes_of",
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
    """The outcome of resolving one name (used by the territory reader for row-level reports).

    ``codes`` holds the current codes of the candidates of an ambiguous name (in the order of
    ``candidates``), so that a caller knowing more (the département of the other communes of a
    CPTS) can say which one is probably meant.
    """

    name: str
    code: str | None
    status: str  # "exact", "former", "close", "unknown", "ambiguous"
    message: str
    candidates: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()


def _in_scope(units: Iterable[_Unit], deps: Iterable[str] | None) -> list[_Unit]:
    return [u for u in units if deps is None or u.departement in deps]


def _describe(u: _Unit, idx: _Index) -> str:
    if u.kind in ("commune", "arrondissement"):
        return f"{u.nom} ({u.insee}, {u.departement})"
    cur = idx.current[u.current]
    return f"{u.nom} ({_KIND_LABEL[u.kind]} {u.insee}, now {cur.nom} {cur.insee})"


# ---------------------------------------------------------------------------------------------
# Closest names: a trigram index narrows the ~40,000 names to a few hundred before difflib
# ---------------------------------------------------------------------------------------------
#: How many unknown names of one input get "closest name" suggestions: each costs a search of
#: every name of the scope, and an error listing 20 problems needs no more. Stated in messages.
SUGGESTED_NAMES = 20
_SHORTLIST = 200  # names shortlisted by shared trigrams, then compared with difflib


@dataclass
class _Grams:
    keys: list[str]
    units: list[_Unit]
    departements: np.ndarray
    current: np.ndarray  # the unit is a current commune or arrondissement (fuzzy matching)
    postings: dict[str, np.ndarray]


def _trigrams(key: str) -> set[str]:
    padded = f" {key} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


@lru_cache(maxsize=1)
def _grams() -> _Grams:
    idx = _index()
    keys: list[str] = []
    units: list[_Unit] = []
    for key, us in idx.by_loose.items():
        for u in dict.fromkeys(us):
            keys.append(key)
            units.append(u)
    postings: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        for gram in _trigrams(key):
            postings[gram].append(i)
    return _Grams(
        keys, units,
        np.array([u.departement for u in units], dtype=object),
        np.array([u.kind in ("commune", "arrondissement") for u in units]),
        {g: np.asarray(ids, dtype=np.int32) for g, ids in postings.items()},
    )


@lru_cache(maxsize=64)
def _scope_mask(deps: frozenset[str] | None, current_only: bool) -> np.ndarray:
    g = _grams()
    mask = np.ones(len(g.keys), dtype=bool) if deps is None else np.isin(
        g.departements, list(deps))
    return mask & g.current if current_only else mask


def _nearest(
    key: str, deps: frozenset[str] | None, *, n: int, cutoff: float, current_only: bool = False,
    allowed: frozenset[str] | None = None,
) -> list[tuple[float, _Unit]]:
    """The ``n`` units whose name is closest to ``key`` (difflib ratio >= ``cutoff``), best first.

    Each unit appears once. Trigrams shortlist the candidates, so that a search costs about a
    millisecond whatever the size of the scope.
    """
    g = _grams()
    ids = [g.postings[t] for t in _trigrams(key) if t in g.postings]
    if not ids:
        return []
    counts = np.bincount(np.concatenate(ids), minlength=len(g.keys))
    counts[~_scope_mask(deps, current_only)] = 0
    if allowed is not None:
        counts[[i for i, u in enumerate(g.units) if u.current not in allowed]] = 0
    shortlist = np.flatnonzero(counts)
    if len(shortlist) > _SHORTLIST:
        shortlist = shortlist[np.argpartition(-counts[shortlist], _SHORTLIST)[:_SHORTLIST]]
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(key)
    scored: list[tuple[float, str, int]] = []
    for i in shortlist.tolist():
        matcher.set_seq1(g.keys[i])
        if (matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff
                and (score := matcher.ratio()) >= cutoff):
            scored.append((score, g.keys[i], i))
    scored.sort(key=lambda t: (-t[0], t[1]))
    out: list[tuple[float, _Unit]] = []
    seen: set[str] = set()
    for score, _, i in scored:
        u = g.units[i]
        if u.insee not in seen:
            seen.add(u.insee)
            out.append((score, u))
        if len(out) == n:
            break
    return out


def _closest(key: str, deps: frozenset[str] | None, idx: _Index, n: int = 3,
             allowed: frozenset[str] | None = None) -> list[str]:
    return [_describe(u, idx) for _, u in _nearest(key, deps, n=n, cutoff=0.6, allowed=allowed)]


# ---------------------------------------------------------------------------------------------
# Arrondissements as people write them, qualifiers in parentheses, postal codes
# ---------------------------------------------------------------------------------------------
_CITIES = {"paris": "75056", "lyon": "69123", "marseille": "13055"}
_ARRONDISSEMENT_WORDS = {"arrondissement", "arrondissements", "arr", "arrt", "ardt", "arrdt",
                         "arrond", "municipal"}
_LINKS = {"de", "du", "d'", "d"}
_ORDINAL = re.compile(r"^(\d{1,2})(?:e|er|ere|eme|em|ieme|me|o|°|º)?$")
_QUALIFIER = re.compile(r"^(.*?\S)\s*[(\[]\s*([^()\[\]]+?)\s*[)\]]$")
_POSTAL = re.compile(r"^\d{5}$")


def _arrondissement(key: str) -> tuple[int, str | None] | None:
    """``"5eme arrondissement de lyon"`` -> ``(5, "69123")``; ``"3e arrondissement"`` -> (3, None).

    The key is a loose :func:`name_key`. A number alone is no arrondissement: it takes the word
    arrondissement (``arr.``, ``ardt``...) or a city's name.
    """
    number: int | None = None
    city: str | None = None
    marked = False
    for token in key.split():
        if token in _CITIES:
            if city is not None:
                return None
            city = _CITIES[token]
        elif m := _ORDINAL.match(token):
            if number is not None:
                return None
            number = int(m[1])
        elif token in _ARRONDISSEMENT_WORDS:
            marked = True
        elif token not in _LINKS:
            return None
    if number is None or not (marked or city is not None):
        return None
    return number, city


def _arrondissement_units(key: str, idx: _Index) -> list[_Unit] | None:
    parsed = _arrondissement(key)
    if parsed is None:
        return None
    number, city = parsed
    return [idx.current[code] for parent, codes in arrondissements().items()
            if city in (None, parent) for code in codes
            if re.search(r"\d+", idx.current[code].nom)[0] == str(number)]  # type: ignore[index]


@lru_cache(maxsize=1)
def _postal_tables() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    table = pq.read_table(bundle_path("postal_codes.parquet"), columns=["code_postal", "insee"])
    by_postal: dict[str, list[str]] = defaultdict(list)
    by_insee: dict[str, list[str]] = defaultdict(list)
    for cp, insee in zip(table.column("code_postal").to_pylist(),
                         table.column("insee").to_pylist(), strict=True):
        by_postal[cp].append(insee)
        by_insee[insee].append(cp)
    return ({k: tuple(v) for k, v in by_postal.items()},
            {k: tuple(v) for k, v in by_insee.items()})


def postal_code_communes(code: object) -> tuple[str, ...]:
    """INSEE codes of the communes (and arrondissements) that a postal code serves.

    Parameters
    ----------
    code : str or int
        A postal code (``38400``; a lost leading zero, ``1000``, is restored).

    Returns
    -------
    tuple of str
        The INSEE codes, empty when the value is no postal code of the bundle.

    Examples
    --------
    >>> postal_code_communes("38400")
    ('38421',)
    >>> len(postal_code_communes(42800)), postal_code_communes(1000)
    (10, ('01053', '01344'))
    """
    text = _SPACES.sub("", str(code))
    m = _FLOAT_CODE.match(text)
    if m:
        text = m.group(1)
    if text.isdigit() and len(text) == 4:
        text = "0" + text
    return _postal_tables()[0].get(text, ())


def postal_codes_of(insee: str) -> tuple[str, ...]:
    """Postal codes of a current commune or arrondissement (empty when unknown).

    Examples
    --------
    >>> postal_codes_of("38421")
    ('38400',)
    """
    return _postal_tables()[1].get(insee, ())


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------
def match_name(
    name: object, departements: Iterable[str] | None = None, *, fuzzy: bool = False,
    suggest: bool = True, postal_code: str | None = None,
) -> NameMatch:
    """Resolve one commune name; never raises for an unknown or ambiguous name (see status).

    Besides the spellings :func:`name_key` absorbs, reads arrondissements as people write them
    (``"5ème arrondissement de Lyon"``, ``"Lyon 5e"``, ``"Paris 16ème arr."``, ``"3ᵉ
    arrondissement"`` when the scope is one of the three cities' départements) and a qualifier
    in parentheses: a département (``"Châteauneuf (42)"``, ``"Trèves (Rhône)"``) or a postal
    code (``"Saint-Martin-d'Hères (38400)"``).

    Parameters
    ----------
    name : str
        A commune name.
    departements : iterable of str, optional
        Restrict candidates to these (normalised) département codes.
    fuzzy : bool
        Accept a single close match (similarity >= 0.85) with status ``"close"``.
    suggest : bool
        Search the closest names for an unknown name (a millisecond or so each): callers
        resolving thousands of names suggest for the first :data:`SUGGESTED_NAMES` only.
    postal_code : str, optional
        Restrict candidates to the communes this postal code serves.

    Returns
    -------
    NameMatch
        The code (None if unresolved), a status and a message for reports.

    Examples
    --------
    >>> match_name("5ème arrondissement de Lyon").code, match_name("Trèves (Rhône)").code
    ('69385', '69252')
    >>> match_name("3ᵉ arrondissement", {"69"}).code, match_name("Châteauneuf (42)").code
    ('69383', '42053')
    """
    text = "" if name is None else _SPACES.sub(" ", str(name)).strip()
    if not text or text.lower() == "nan":
        return NameMatch(text, None, "unknown", "empty commune name")
    deps = None if departements is None else frozenset(departements)
    return _match(text, deps, fuzzy, suggest, postal_code)


@lru_cache(maxsize=16384)
def _match(text: str, deps: frozenset[str] | None, fuzzy: bool, suggest: bool,
           postal_code: str | None) -> NameMatch:
    qualifier = _QUALIFIER.match(text)
    if qualifier and not _TRAILING_ARTICLE.match(text):
        whole = _resolve(text, text, deps, False, False, postal_code)
        if whole.status != "unknown":  # "Château-Chinon (Ville)" is a name of its own
            return whole
        base, qual = qualifier[1], qualifier[2]
        if _POSTAL.match(qual) and postal_code_communes(qual):
            return _resolve(base, text, deps, fuzzy, suggest, qual)
        try:
            dep = normalize_departement(qual)
        except InputError:
            dep = None
        if dep is not None:  # the qualifier of the name wins over the scope of the file
            return _resolve(base, text, frozenset({dep}), fuzzy, suggest, postal_code)
    return _resolve(text, text, deps, fuzzy, suggest, postal_code)


def _resolve(text: str, shown: str, deps: frozenset[str] | None, fuzzy: bool, suggest: bool,
             postal_code: str | None) -> NameMatch:
    idx = _index()
    allowed = None if postal_code is None else frozenset(postal_code_communes(postal_code))

    def in_scope(units: Iterable[_Unit]) -> list[_Unit]:
        return [u for u in _in_scope(units, deps) if allowed is None or u.current in allowed]

    full, loose = name_key(text, keep_article=True), name_key(text)
    for table, key in ((idx.by_full, full), (idx.by_loose, loose)):
        units = in_scope(table.get(key, []))
        current = {u.insee: u for u in units if u.kind in ("commune", "arrondissement")}
        if len(current) == 1:
            u = next(iter(current.values()))
            return NameMatch(shown, u.insee, "exact", f"{shown!r} is {_describe(u, idx)}")
        if len(current) > 1:
            return _ambiguous(shown, list(current.values()), idx)
        olds = {u.current: u for u in units}
        if len(olds) == 1:
            u = next(iter(olds.values()))
            cur = idx.current[u.current]
            return NameMatch(
                shown, cur.insee, "former",
                f"{shown!r} is a former name: {_describe(u, idx)}; counted as {cur.nom} "
                f"({cur.insee})",
            )
        if len(olds) > 1:
            cands = tuple(_describe(u, idx) for u in olds.values())
            return NameMatch(shown, None, "ambiguous",
                             f"{shown!r} is a former name of several communes: "
                             f"{'; '.join(cands)}", cands, tuple(olds))
    arrondissements_ = _arrondissement_units(loose, idx)
    if arrondissements_:
        units = in_scope(arrondissements_)
        if len(units) == 1:
            return NameMatch(shown, units[0].insee, "exact",
                             f"{shown!r} is {_describe(units[0], idx)}")
        if len(units) > 1:
            return _ambiguous(shown, units, idx, "the city")
    if fuzzy:
        best = _nearest(loose, deps, n=2, cutoff=0.85, current_only=True, allowed=allowed)
        if len(best) == 1 or (len(best) == 2 and best[0][0] > best[1][0]):
            u = best[0][1]
            return NameMatch(shown, u.insee, "close",
                             f"{shown!r} matched approximately to {_describe(u, idx)}")
    scope = "" if deps is None else f" in département(s) {', '.join(sorted(deps))}"
    if postal_code is not None:
        scope += f" with postal code {postal_code}"
        elsewhere = _resolve(text, shown, deps, False, False, None)
        if elsewhere.code is not None:
            served = ", ".join(f"{commune_name(c)} ({c})" for c in sorted(allowed or ()))
            return NameMatch(
                shown, None, "unknown",
                f"postal code {postal_code} does not serve {shown!r}: {shown!r} is "
                f"{commune_name(elsewhere.code)} ({elsewhere.code}), whose postal code(s) are "
                f"{', '.join(postal_codes_of(elsewhere.code)) or 'unknown'}; {postal_code} "
                f"serves {served}",
            )
    if not suggest:
        return NameMatch(shown, None, "unknown", f"{shown!r} is not a commune name{scope}")
    cands = tuple(_closest(loose, deps, idx, allowed=allowed))
    hint = f"; closest: {'; '.join(cands)}" if cands else ""
    return NameMatch(shown, None, "unknown", f"{shown!r} is not a commune name{scope}{hint}",
                     cands)


def _ambiguous(shown: str, units: list[_Unit], idx: _Index, what: str = "the département"
               ) -> NameMatch:
    cands = tuple(_describe(u, idx) for u in units)
    return NameMatch(
        shown, None, "ambiguous",
        f"{shown!r} matches {len(units)} communes: {'; '.join(cands)}; give the INSEE code or "
        f"{what}",
        cands, tuple(u.insee for u in units),
    )


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
    ``Marseille 1er arrondissement``, ``5ème arrondissement de Lyon``...; a département or a
    postal code in parentheses restricts a name: ``Châteauneuf (42)``, ``Trèves (Rhône)``.

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
        If a name matches no commune; lists every offender, the first
        :data:`SUGGESTED_NAMES` with their closest candidates.
    AmbiguousCommuneError
        If a name matches several communes (and none is unknown).

    Examples
    --------
    >>> resolve_communes(["L’Horme", "St-Chamond", "Longes"], departements=["42", "69"])
    ['42110', '42207', '69119']
    >>> resolve_communes(["Lyon 5ème", "Châteauneuf (42)"])
    ['69385', '42053']
    """
    codes = normalize_departements(departements)
    deps = None if codes is None else set(codes)
    matches = []
    suggested = 0
    for n in names:
        m = match_name(n, deps, fuzzy=fuzzy, suggest=suggested < SUGGESTED_NAMES)
        suggested += m.status == "unknown"
        matches.append(m)
    unknown = [m for m in matches if m.status == "unknown"]
    ambiguous = [m for m in matches if m.status == "ambiguous"]
    if unknown or ambiguous:
        msg = "; ".join(m.message for m in unknown + ambiguous)
        if len(unknown) > SUGGESTED_NAMES:
            msg += (f" (closest names are searched for the first {SUGGESTED_NAMES} unknown "
                    "names only)")
        cls = UnknownCommuneError if unknown else AmbiguousCommuneError
        raise cls(f"{len(unknown) + len(ambiguous)} name(s) could not be resolved: {msg}")
    notes = [m.message for m in matches if m.status in ("former", "close")]
    if notes:
        warn(f"{len(notes)} name(s) resolved with care: " + "; ".join(notes))
    return [m.code for m in matches]  # type: ignore[misc]
