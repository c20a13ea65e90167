"""Prepare the inputs of every computation once: the public boundary of :mod:`cpts_geo.analysis`.

:func:`prepare` validates the membership table, applies the ``as_of``/``statuses`` filters,
completes the communes so that every figure covers the whole area it is named after (loading the
missing communes from the same source and vintage, or refusing), brings Paris, Lyon and
Marseille to one granularity, and resolves the contiguity. Everything downstream (rates,
diagnostics, comparisons, maps, the site) is a pure function of the :class:`Prepared` inputs: it
reads no file, no bundle and no network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

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

    @cached_property
    def codes(self) -> np.ndarray:
        """INSEE codes of ``communes``, as an object array."""
        return self.communes["insee"].to_numpy(dtype=object)

    @cached_property
    def position(self) -> pd.Series:
        """Position of each code in ``communes``."""
        return pd.Series(np.arange(len(self.codes)), index=pd.Index(self.codes))

    @cached_property
    def inside(self) -> pd.DataFrame:
        """Membership rows whose commune is in ``communes``, with its position ``pos``."""
        m = self.membership
        pos = self.position.reindex(m["insee"].to_numpy()).to_numpy()
        keep = ~np.isnan(pos)
        out = m[keep].copy()
        out["pos"] = pos[keep].astype(np.int64)
        return out

    @cached_property
    def population(self) -> np.ndarray:
        """Population of each commune as floats (missing counts as 0, see ``pop_missing``)."""
        pop = pd.to_numeric(self.communes["population"], errors="coerce").astype(float)
        return pop.fillna(0.0).to_numpy()

    @cached_property
    def pop_missing(self) -> np.ndarray:
        """Whether each commune's population is missing."""
        return pd.to_numeric(self.communes["population"], errors="coerce").isna().to_numpy()

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
        wanted = set(departements)
        dep = self.communes["departement"].to_numpy(dtype=object)
        return np.fromiter((d in wanted for d in dep), dtype=bool, count=len(dep))


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
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
    if communes["insee"].duplicated().any():
        dups = communes.loc[communes["insee"].duplicated(), "insee"].unique()[:10]
        raise InputError(f"`communes` has duplicate INSEE codes: {list(dups)}")
    codes = set(communes["insee"].to_numpy(dtype=object))
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
    codes = communes["insee"].to_numpy(dtype=object)
    dep = communes["departement"].astype(str).to_numpy(dtype=object)
    counts = pd.Series(dep).value_counts()
    city_of = city_of_arrondissement()
    split = {departement_of(city_of[c]) for c in codes if c in city_of}
    return sorted(d for d in set(wanted)
                  if int(counts.get(d, 0)) < _expected_units(d, d in split))


def _lacking_codes(communes: pd.DataFrame, m: pd.DataFrame) -> set[str]:
    """Codes of the membership that ``communes`` lacks, at either granularity."""
    present = set(communes["insee"].to_numpy(dtype=object))
    city_of = city_of_arrondissement()
    arms_of = arrondissements()
    out = set()
    for code in set(m["insee"].to_numpy(dtype=object)) - present:
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
    codes = set(communes["insee"].to_numpy(dtype=object))
    listed = set(m["insee"].to_numpy(dtype=object))
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
    """
    check_communes(communes, needed)
    when = _parse_as_of(as_of)
    wanted_statuses = _parse_statuses(statuses)
    m = as_membership(territories)
    source = territories.attrs.get("source") if hasattr(territories, "attrs") else None
    m = _filter(m, when, wanted_statuses)
    m.attrs = {}
    base = communes
    if whole is not None or whole_cpts or whole_departements:
        if "departement" not in communes.columns:
            raise InputError("`communes` lacks the column 'departement'")
        present = set(communes["departement"].astype(str))
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
    if not (isinstance(base.index, pd.RangeIndex) and base.index.start == 0
            and base.index.step == 1):
        base = base.reset_index(drop=True)
    if not base["insee"].is_monotonic_increasing:
        base = base.sort_values("insee").reset_index(drop=True)
    if isinstance(contiguity, ContiguityGraph):
        graph = contiguity
    else:
        graph = bundled_graph() if contiguity is None else ContiguityGraph(contiguity)
    in_use = set(base["insee"].to_numpy(dtype=object)) | set(m["insee"].to_numpy(dtype=object))
    graph = graph.at_granularity(in_use)
    attrs = {k: v for k, v in communes.attrs.items() if not isinstance(v, pd.DataFrame)}
    return Prepared(base, m, attrs, graph, when, wanted_statuses, source)
