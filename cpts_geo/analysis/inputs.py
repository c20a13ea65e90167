"""Prepare the inputs of every computation once: the public boundary of :mod:`cpts_geo.analysis`.

:func:`prepare` validates the membership table, applies the ``as_of``/``statuses`` filters,
completes the communes so that every figure covers the whole area it is named after (loading the
missing communes from the same source and vintage, or refusing), brings Paris, Lyon and
Marseille to one granularity, and resolves the contiguity. Everything downstream (rates,
diagnostics, comparisons, maps, the site) is a pure function of the :class:`Prepared` inputs: it
reads no file, no bundle and no network.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from .._snapshot import Snapshot, snapshot
from ..errors import InputError, warn
from ..geography import (
    arrondissements,
    city_of_arrondissement,
    departement_of,
    departements,
    departements_of_region,
)
from ..membership import STATUS_DTYPE, as_membership, normalize_status, parse_date
from ..sources.bundle import load_contiguity
from ..sources.loaders import load_communes
from ..typing import DateLike
from .graph import ContiguityGraph

__all__ = ["Prepared", "filter_territories", "prepare"]

Whole = Literal["departement", "region", "nation"] | None


def _numbered(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each value's number among the sorted distinct values (read-only), and those values."""
    inv, uniques = pd.factorize(values, sort=True)
    inv.flags.writeable = False
    return inv, np.asarray(uniques, dtype=object)


@dataclass(frozen=True, eq=False)
class Prepared:
    """Validated inputs, at one granularity, with their vintage: what every computation reads.

    Attributes
    ----------
    communes : pandas.DataFrame
        The communes (a GeoDataFrame when geometries were given), sorted by code, with a
        RangeIndex; Paris, Lyon and Marseille whole or by arrondissement as the territories need.
    membership : pandas.DataFrame
        The membership table (:mod:`cpts_geo.membership` columns), filtered by ``as_of`` and
        ``statuses``, at the granularity of ``communes``.
    attrs : dict
        The vintage of the communes (``source``, ``cog_year``, ``population_year``...).
    graph : ContiguityGraph
        Which communes share a border, at the granularity in use.
    as_of : pandas.Timestamp or None
        The date filter applied.
    statuses : tuple of str or None
        The status filter applied.
    territory_source : str or None
        Where the territories come from (file names).
    """

    communes: pd.DataFrame
    membership: pd.DataFrame
    attrs: dict[str, Any]
    graph: ContiguityGraph
    as_of: pd.Timestamp | None = None
    statuses: tuple[str, ...] | None = None
    territory_source: str | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    # not an argument, so that dataclasses.replace() starts with none
    _arrays: dict[str, Any] = field(default_factory=dict, repr=False, init=False)

    def again(self) -> Prepared:
        """The same inputs for another computation: frames shared copy-on-write, no result kept.

        The arrays that only restate the inputs (``codes``, ``position``, ``inside``,
        ``population``, ``pop_missing``) are shared; what is computed from them is not.
        """
        out = Prepared(self.communes.copy(deep=False), self.membership.copy(deep=False),
                       dict(self.attrs), self.graph, self.as_of, self.statuses,
                       self.territory_source)
        object.__setattr__(out, "_arrays", self._arrays)
        return out

    def _array(self, name: str, make: Any) -> Any:
        if name not in self._arrays:
            value = make()
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
            self._arrays[name] = value
        return self._arrays[name]

    @property
    def codes(self) -> np.ndarray:
        """INSEE codes of ``communes``, as an object array."""
        return self._array("codes", lambda: self.communes["insee"].to_numpy(dtype=object))

    @property
    def position(self) -> pd.Series:
        """Position of each code in ``communes``."""
        return self._array("position", lambda: pd.Series(np.arange(len(self.codes)),
                                                          index=pd.Index(self.codes)))

    @property
    def inside(self) -> pd.DataFrame:
        """Membership rows whose commune is in ``communes``, with its position ``pos``."""
        return self._array("inside", self._inside).copy(deep=False)

    def _inside(self) -> pd.DataFrame:
        m = self.membership
        pos = index_in(m["insee"], self.communes["insee"])
        keep = pos >= 0
        out = m[keep].copy() if not keep.all() else m.copy()
        out["pos"] = pos[keep]
        return out

    @property
    def population(self) -> np.ndarray:
        """Population of each commune as floats (missing counts as 0, see ``pop_missing``)."""
        return self._array("population", lambda: pd.to_numeric(
            self.communes["population"], errors="coerce").astype(float).fillna(0.0).to_numpy())

    @property
    def pop_missing(self) -> np.ndarray:
        """Whether each commune's population is missing."""
        return self._array("pop_missing", lambda: pd.to_numeric(
            self.communes["population"], errors="coerce").isna().to_numpy())

    def areas(self, by: str) -> tuple[np.ndarray, np.ndarray]:
        """Area of each commune at a level: (position of its area, the areas' sorted codes)."""
        return self._array(f"areas:{by}", lambda: _numbered(self.communes[by].astype(str)))

    @property
    def cpts_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """The CPTS of each row of ``membership`` by number, and their ids (sorted)."""
        return self._array("cpts_codes", lambda: _numbered(self.membership["cpts_id"]))

    @property
    def nodes(self) -> np.ndarray:
        """The node of each commune in ``graph`` (-1: a commune the graph does not know)."""
        return self._array("nodes", lambda: self.graph.nodes(self.communes["insee"]))

    @property
    def membership_nodes(self) -> np.ndarray:
        """The node of each row of ``membership`` in ``graph`` (-1: unknown)."""
        return self._array("membership_nodes", lambda: self.graph.nodes(self.membership["insee"]))

    @property
    def cpts_names(self) -> tuple[np.ndarray, np.ndarray]:
        """The CPTS of each row of ``membership`` by name number, and the names (sorted)."""
        return self._array("cpts_names", lambda: _numbered(self.membership["cpts"]))

    @property
    def inside_names(self) -> np.ndarray:
        """The CPTS of each row of ``inside`` by name number (positions in ``cpts_names[1]``)."""
        return self._array("inside_names", lambda: self.cpts_names[0][
            self._array("inside", self._inside).index.to_numpy()])

    @property
    def has_geometry(self) -> np.ndarray:
        """Whether each commune has a boundary (all True without a geometry column)."""
        return self._array("has_geometry", lambda: (
            ~shapely.is_missing(self.communes.geometry.to_numpy())
            if "geometry" in self.communes.columns else np.ones(len(self.communes), dtype=bool)))

    @property
    def inside_cpts(self) -> np.ndarray:
        """The CPTS of each row of ``inside`` by number (positions in ``cpts_codes[1]``)."""
        return self._array("inside_cpts", lambda: self.cpts_codes[0][
            self._array("inside", self._inside).index.to_numpy()])

    @cached_property
    def per_commune(self) -> pd.DataFrame:
        """Per-commune counts aligned on ``communes`` (by position): the counting rules.

        ``n_cpts``, ``claimed_share`` (sum of shares), ``covered_share`` (capped at 1),
        ``covered_population``, ``overlap`` (2+ CPTS) and ``overlap_population`` (inhabitants
        claimed more than once).
        """
        n = len(self.codes)
        ins = self.inside
        pos = ins["pos"].to_numpy()
        claimed = np.bincount(pos, weights=ins["share"].to_numpy(), minlength=n)
        n_cpts = np.bincount(pos, minlength=n)
        covered_share = np.minimum(claimed, 1.0)
        pop = self.population
        return pd.DataFrame({
            "n_cpts": n_cpts,
            "claimed_share": claimed,
            "covered_share": covered_share,
            "covered_population": pop * covered_share,
            "covered": n_cpts > 0,
            "overlap": n_cpts >= 2,
            "overlap_population": pop * np.clip(claimed - 1.0, 0.0, 1.0),
        })

    def memo(self, key: str, fn: Any) -> Any:
        """``fn(self)``, computed once for these inputs (a site draws many maps of one state)."""
        if key not in self._cache:
            self._cache[key] = fn(self)
        return self._cache[key]

    def scoped(self, departements: Iterable[str]) -> np.ndarray:
        """Boolean mask of the communes of these (normalised) départements."""
        area_of, codes = self.areas("departement")
        return np.isin(area_of, np.flatnonzero(np.isin(codes, list(set(departements)))))


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
def _arrow(values: pd.Series) -> pa.Array:
    """Text values as an Arrow array (no copy for pandas' Arrow-backed ``str`` columns)."""
    return pa.array(values if values.dtype == "str" else values.astype("str"),
                    type=pa.large_string())


def index_in(values: pd.Series, universe: pd.Series) -> np.ndarray:
    """Position of each value in ``universe`` (-1 when absent), vectorised with pyarrow."""
    found = pc.index_in(_arrow(values), value_set=_arrow(universe))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _plm_codes() -> list[str]:
    return [*arrondissements(), *city_of_arrondissement()]


def _present(communes: pd.DataFrame) -> set[str]:
    """The codes of Paris, Lyon, Marseille and their arrondissements that ``communes`` holds."""
    found = pc.filter(_arrow(communes["insee"]), pc.is_in(
        _arrow(communes["insee"]), value_set=pa.array(_plm_codes(), type=pa.large_string())))
    return set(found.to_pylist())


def check_communes(communes: object, needed: Iterable[str] = ("insee", "population")) -> None:
    """Refuse what is not a frame of communes as :func:`cpts_geo.load_communes` gives them."""
    if not isinstance(communes, pd.DataFrame):
        raise InputError(
            f"`communes` was a {type(communes).__name__}; expected the GeoDataFrame of "
            "cpts_geo.load_communes()"
        )
    missing = [c for c in needed if c not in communes.columns]
    if missing:
        raise InputError(
            f"`communes` lacks column(s) {missing}; expected the GeoDataFrame of "
            f"cpts_geo.load_communes() (columns found: {list(communes.columns)})"
        )
    codes = _present(communes)
    if not communes["insee"].is_unique:
        dups = communes.loc[communes["insee"].duplicated(), "insee"].unique()[:10]
        raise InputError(f"`communes` has duplicate INSEE codes: {list(dups)}")
    both = sorted(city for city, arms in arrondissements().items()
                  if city in codes and codes.intersection(arms))
    if both:
        raise InputError(
            f"`communes` holds both the cit{'y' if len(both) == 1 else 'ies'} {both} and "
            "arrondissements of it: its inhabitants would count twice; load the communes with "
            "or without `arrondissements=True`, not both"
        )


def _parse_as_of(as_of: DateLike | None) -> pd.Timestamp | None:
    if as_of is None:
        return None
    when = parse_date(as_of, what="`as_of`")
    if when is None:
        raise InputError(f"`as_of` was {as_of!r}; expected a date such as 2021-01-01")
    return when


def _parse_statuses(statuses: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if statuses is None:
        return None
    items = [statuses] if isinstance(statuses, str) else list(statuses)
    out = []
    for s in items:
        found = normalize_status(s)
        if found is None:
            raise InputError(f"`statuses` holds an empty status {s!r}")
        out.append(found)
    return tuple(dict.fromkeys(out))


def _filter(m: pd.DataFrame, as_of: pd.Timestamp | None,
            statuses: tuple[str, ...] | None) -> pd.DataFrame:
    keep = np.ones(len(m), dtype=bool)
    if as_of is not None:
        undated = m["status_date"].isna()
        if undated.any():
            names = sorted(m.loc[undated, "cpts"].unique())
            warn(f"{len(names)} CPTS have no status_date and are left out of as_of="
                 f"{as_of.date()}: " + ", ".join(names))
        keep &= (m["status_date"] <= as_of).to_numpy()
    if statuses is not None:
        keep &= m["status"].isin(statuses).to_numpy()
    if keep.all():
        return m
    out = m[keep].reset_index(drop=True)
    out.attrs = dict(m.attrs)
    return out


def filter_territories(
    territories: pd.DataFrame,
    *,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> pd.DataFrame:
    """Keep the CPTS that had reached a status by a date.

    Parameters
    ----------
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of : date or str, optional
        Keep the CPTS whose ``status_date`` is on or before this date (any form
        :func:`cpts_geo.membership.parse_date` reads: ``2021-01-01``, ``07/12/2020`` day first,
        ``9 juillet 2020``). CPTS without a date are left out, with a warning naming them (their
        existence at that date is unknown).
    statuses : str or iterable of str, optional
        Keep the CPTS whose status is one of these (French labels or simple spellings, e.g.
        ``["ACI signé"]``).

    Returns
    -------
    pandas.DataFrame
        The membership rows kept (a new, validated table).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"cpts": ["A", "B"], "insee": ["42218", "42207"],
    ...                   "status": ["ACI signé", "pré-projet"],
    ...                   "status_date": pd.to_datetime(["2020-12-07", "2023-01-01"])})
    >>> filter_territories(t, as_of="2021-01-01")["cpts"].tolist()
    ['A']
    >>> filter_territories(t, statuses=["aci signe"])["cpts"].tolist()
    ['A']
    """
    m = as_membership(territories)
    return _filter(m, _parse_as_of(as_of), _parse_statuses(statuses)).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Completing the communes (whole areas, whole CPTS) and one granularity
# ---------------------------------------------------------------------------------------------
def _expected_units(dep: str, split: bool) -> int:
    d = departements()[dep]
    return d.n_units_arrondissements if split else d.n_communes


def _missing_departements(communes: pd.DataFrame, wanted: Iterable[str]) -> list[str]:
    """Départements of ``wanted`` whose communes are not all in ``communes``."""
    counts = communes["departement"].astype(str).value_counts()
    present = _present(communes)
    split = {departement_of(city) for city, arms in arrondissements().items()
             if present.intersection(arms)}
    return sorted(d for d in set(wanted)
                  if int(counts.get(d, 0)) < _expected_units(d, d in split))


def _lacking_codes(communes: pd.DataFrame, m: pd.DataFrame) -> set[str]:
    """Codes of the membership that ``communes`` lacks, at either granularity."""
    present = _present(communes)
    city_of = city_of_arrondissement()
    arms_of = arrondissements()
    out = set()
    outside = m["insee"][index_in(m["insee"], communes["insee"]) < 0]
    for code in set(outside.astype(object)):
        if code in city_of and city_of[code] in present:
            continue  # an arrondissement of a city `communes` has whole
        if code in arms_of and present.intersection(arms_of[code]):
            continue  # a city `communes` has by arrondissement
        out.add(code)
    return out


def _complete(communes: pd.DataFrame, deps: list[str], codes: set[str],
              why: str) -> pd.DataFrame:
    """Add the communes of ``deps`` and the communes ``codes`` missing from ``communes``.

    They are loaded from the source and vintage of ``communes`` (``attrs``), or refused.
    """
    kind = communes.attrs.get("source_kind")
    where = ", ".join(deps + sorted({departement_of(c) for c in codes} - set(deps)))
    if kind not in ("bundled", "geo-api", "ign"):
        raise InputError(
            f"{why}, but `communes` lacks communes of département(s) {where} and does not say "
            "where it comes from (attrs['source_kind']): load them with cpts_geo.load_communes, "
            "or ask for figures by département"
        )
    year = communes.attrs.get("population_year") if kind == "bundled" else None
    present = set(communes["insee"].to_numpy(dtype=object))
    city_of = city_of_arrondissement()
    split = any(c in city_of for c in present | codes)
    load = sorted(set(deps) | {departement_of(c) for c in codes})
    extra = load_communes(load, year=year, source=kind, arrondissements=split)
    extra = extra[~extra["insee"].isin(present)]
    if split:  # keep a city whole where `communes` has it whole
        whole = {c for c in arrondissements() if c in present or c in codes}
        extra = extra[~extra["insee"].map(city_of).isin(whole)]
    extra = extra[extra["departement"].isin(deps) | extra["insee"].isin(codes)
                  | extra["insee"].map(city_of).isin(codes)]
    warn(f"{why}: `communes` lacked {len(extra)} commune(s) of département(s) {where}; they "
         f"were loaded from the same source ({kind}"
         + (f", populations {year}" if year else "") + ")")
    return _concat(communes, extra)


def _concat(communes: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    keep = [c for c in communes.columns if c in extra.columns]
    attrs = dict(communes.attrs)
    out = pd.concat([communes, extra[keep]], ignore_index=True)
    if "geometry" in out.columns:
        out = gpd.GeoDataFrame(out, geometry="geometry", crs=getattr(communes, "crs", 4326)
                               or 4326)
    out = out.sort_values("insee").reset_index(drop=True)
    out.attrs = attrs
    return out


def _harmonize(communes: pd.DataFrame, m: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bring communes and membership to the same granularity in Paris, Lyon and Marseille.

    A city listed whole while ``communes`` has its arrondissements is expanded to them; an
    arrondissement listed while ``communes`` has the city whole makes the city be replaced by its
    arrondissements (from the bundle, same population year), so that the city's total stays
    right either way.
    """
    city_of = city_of_arrondissement()
    arms_of = arrondissements()
    codes = _present(communes)
    listed = _present(m)
    # 1. city listed whole, communes at arrondissement level -> expand the membership
    split = {c for c in arms_of if c in listed and c not in codes and codes & set(arms_of[c])}
    if split:
        rows = m[m["insee"].isin(split)]
        expanded = rows.merge(
            pd.DataFrame({"insee": list(city_of.values()), "arm": list(city_of.keys())}),
            on="insee",
        )
        expanded = expanded.assign(insee=expanded.pop("arm"))
        attrs = dict(m.attrs)
        m = pd.concat([m[~m["insee"].isin(split)], expanded], ignore_index=True)
        m["status"] = m["status"].astype(STATUS_DTYPE)
        m.attrs = attrs
    # 2. arrondissements listed, city whole in communes -> split the city in communes
    cities = {city_of[a] for a in listed if a in city_of and a not in codes
              and city_of[a] in codes}
    if cities:
        year = communes.attrs.get("population_year")
        arms = load_communes(sorted({departement_of(c) for c in cities}), arrondissements=True,
                             year=year)
        arms = arms[arms["insee"].map(city_of).isin(cities)].copy()
        # keep each city's total as `communes` has it, whatever vintage that is
        city_pop = pd.to_numeric(
            communes.set_index("insee").loc[sorted(cities), "population"], errors="coerce"
        )
        arm_sum = arms.groupby(arms["insee"].map(city_of))["population"].sum()
        mismatch = [c for c in cities if pd.notna(city_pop[c]) and arm_sum[c] != city_pop[c]]
        if mismatch:
            factor = arms["insee"].map(city_of).map(city_pop / arm_sum).astype(float)
            arms["population"] = pd.array(
                (arms["population"].astype(float) * factor).round(), dtype="Int64"
            )
            warn(f"the population year of `communes` is not known: the arrondissements of "
                 f"{', '.join(sorted(mismatch))} were scaled to the city's population in "
                 "`communes` (load the communes with cpts_geo.load_communes to avoid this)")
        communes = _concat(communes[~communes["insee"].isin(cities)], arms)
        if listed & cities:  # the city may also be listed whole by some CPTS: expand those
            return _harmonize(communes, m)
    return communes, m


@lru_cache(maxsize=1)
def bundled_graph() -> ContiguityGraph:
    """The bundle's contiguity as a graph (built once per process)."""
    return ContiguityGraph(load_contiguity())


# ---------------------------------------------------------------------------------------------
def prepare(
    communes: pd.DataFrame,
    territories: pd.DataFrame,
    *,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
    contiguity: pd.DataFrame | ContiguityGraph | None = None,
    whole: Whole = None,
    whole_cpts: bool | Iterable[str] = False,
    whole_departements: Iterable[str] | None = None,
    needed: Iterable[str] = ("insee", "population"),
) -> Prepared:
    """Validate and complete the inputs once; every computation then reads the result.

    Parameters
    ----------
    communes : pandas.DataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`, or a raw table it accepts).
    as_of, statuses
        Filters, as in :func:`filter_territories`.
    contiguity : pandas.DataFrame or ContiguityGraph, optional
        Borders between communes (default: the bundle's, :func:`cpts_geo.load_contiguity`).
    whole : {"departement", "region", "nation"}, optional
        Complete ``communes`` so that each area of this level touched by them is whole (all of
        France for ``"nation"``), loading what is missing from their source and vintage, or
        refuse: a figure never carries the name of an area it does not cover whole.
    whole_cpts : bool or iterable of str
        Complete ``communes`` with every commune of the CPTS (for figures named after a CPTS);
        with départements, only the CPTS that have a commune there.
    whole_departements : iterable of str, optional
        Complete ``communes`` so that these (normalised) départements are whole.
    needed : iterable of str
        Columns ``communes`` must have.

    Returns
    -------
    Prepared

    Notes
    -----
    The result is remembered for the same frames and arguments (the last few calls): a second
    call with frames that hold exactly what they held (:mod:`cpts_geo._snapshot`, which no change
    in place survives) skips the checks and re-emits the warnings of the first call. Only the
    validated inputs are reused; every computation on them starts afresh.
    """
    when = _parse_as_of(as_of)
    wanted_statuses = _parse_statuses(statuses)
    key = _memo_key(communes, territories, contiguity, when, wanted_statuses, whole, whole_cpts,
                    whole_departements, needed)
    entry = _MEMO.get(key) if key is not None else None
    if entry is not None and entry.matches(communes, territories, contiguity):
        for category, message in entry.warnings:
            warnings.warn(message, category, stacklevel=2)
        return entry.prepared.again()
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            p = _prepare(communes, territories, contiguity, when, wanted_statuses, whole,
                         whole_cpts, whole_departements, needed)
    finally:  # the warnings go on as they came, to the caller's filters
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if key is not None and p.attrs.get("source_kind", "bundled") == "bundled":
        _remember(key, communes, territories, contiguity, p,
                  [(w.category, str(w.message)) for w in caught])
    return p


# ---------------------------------------------------------------------------------------------
# The memo of prepared inputs
# ---------------------------------------------------------------------------------------------
_MEMO_SIZE = 6


@dataclass(eq=False)
class _Entry:
    """Prepared inputs and what the caller's frames held when they were prepared."""

    snapshots: tuple[Snapshot | None, ...]
    contiguity: object
    prepared: Prepared
    warnings: list[tuple[type[Warning], str]]

    def matches(self, communes: object, territories: object, contiguity: object) -> bool:
        c_snap, t_snap, g_snap = self.snapshots
        if c_snap is None or t_snap is None or not c_snap.matches(communes) or not t_snap.matches(
                territories):
            return False
        if isinstance(contiguity, pd.DataFrame):
            return g_snap is not None and g_snap.matches(contiguity)
        return contiguity is self.contiguity


_MEMO: dict[tuple[Any, ...], _Entry] = {}


def _memo_key(communes: object, territories: object, contiguity: object, *args: Any
              ) -> tuple[Any, ...] | None:
    whole_cpts, whole_departements, needed = args[3:]
    try:
        return (id(communes), id(territories), id(contiguity), *args[:3],
                whole_cpts if isinstance(whole_cpts, bool) else frozenset(whole_cpts),
                None if whole_departements is None else frozenset(whole_departements),
                tuple(needed))
    except TypeError:  # an argument that is no iterable of codes: the checks will say
        return None


def _remember(key: tuple[Any, ...], communes: object, territories: object, contiguity: object,
              p: Prepared, caught: list[tuple[type[Warning], str]]) -> None:
    snaps = (snapshot(communes), snapshot(territories),
             snapshot(contiguity) if isinstance(contiguity, pd.DataFrame) else None)
    if snaps[0] is None or snaps[1] is None or (
            isinstance(contiguity, pd.DataFrame) and snaps[2] is None):
        return
    while len(_MEMO) >= _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    # the entry holds its own (copy-on-write) frames, never the caller's, so that it goes when
    # the caller's frames go
    _MEMO[key] = _Entry(snaps, contiguity if not isinstance(contiguity, pd.DataFrame) else None,
                        p.again(), caught)
    for frame in (communes, territories):
        weakref.finalize(frame, _MEMO.pop, key, None)


def _prepare(communes: pd.DataFrame, territories: pd.DataFrame,
             contiguity: pd.DataFrame | ContiguityGraph | None, when: pd.Timestamp | None,
             wanted_statuses: tuple[str, ...] | None, whole: Whole,
             whole_cpts: bool | Iterable[str], whole_departements: Iterable[str] | None,
             needed: Iterable[str]) -> Prepared:
    check_communes(communes, needed)
    m = as_membership(territories)
    source = territories.attrs.get("source") if hasattr(territories, "attrs") else None
    m = _filter(m, when, wanted_statuses)
    m.attrs = {}
    base = communes
    if whole is not None or whole_cpts or whole_departements:
        if "departement" not in communes.columns:
            raise InputError("`communes` lacks the column 'departement'")
        present = set(communes["departement"].astype(str).unique())
        wanted: set[str] = set()
        if whole == "departement":
            wanted |= present
        elif whole == "region":
            regs = {departements()[d].region for d in present if d in departements()}
            wanted |= {d for r in regs for d in departements_of_region(r)}
        elif whole == "nation":
            wanted |= set(departements())
        if whole_departements:
            wanted |= set(whole_departements)
        lacking: set[str] = set()
        if whole_cpts is True:
            lacking = _lacking_codes(communes, m)
        elif whole_cpts:  # only the CPTS with a commune in these départements
            scope = set(whole_cpts)
            codes = m["insee"].to_numpy(dtype=object)
            touching = {cid for cid, c in zip(m["cpts_id"], codes, strict=True)
                        if departement_of(c) in scope}
            lacking = _lacking_codes(communes, m[m["cpts_id"].isin(touching)])
        missing = _missing_departements(communes, wanted)
        if missing or lacking:
            why = {"departement": "figures by département cover whole départements",
                   "region": "figures by région cover whole régions",
                   "nation": "national figures cover all of France"}.get(
                whole or "", "figures of a CPTS cover all its communes"
                if lacking and not missing else "a map of a département draws it whole")
            base = _complete(communes, missing, lacking, why)
    base, m = _harmonize(base, m)
    if not m.index.equals(pd.RangeIndex(len(m))):  # rows are numbered by position
        m = m.reset_index(drop=True)
    if not (isinstance(base.index, pd.RangeIndex) and base.index.start == 0
            and base.index.step == 1):
        base = base.reset_index(drop=True)
    if not base["insee"].is_monotonic_increasing:
        base = base.sort_values("insee").reset_index(drop=True)
    if isinstance(contiguity, ContiguityGraph):
        graph = contiguity
    else:
        graph = bundled_graph() if contiguity is None else ContiguityGraph(contiguity)
    present = _present(base)
    listed = _present(m)
    graph = graph.at_granularity({a for a in city_of_arrondissement()
                                  if a in present or a in listed})
    attrs = {k: v for k, v in communes.attrs.items() if not isinstance(v, pd.DataFrame)}
    return Prepared(base, m, attrs, graph, when, wanted_statuses, source)
