"""Coverage of the population by CPTS: rates, overlaps, gaps and CPTS outlines.

Every function here is a pure function of two frames:

* ``communes``: a GeoDataFrame as returned by :func:`cpts_geo.load_communes` (at least ``insee``,
  ``population``, ``departement``, ``region``; ``area_km2`` and ``geometry`` where used);
* ``territories``: the membership table returned by :func:`cpts_geo.read_territories`, one row per
  CPTS and commune (at least ``cpts`` and ``insee``; ``cpts_id``, ``share``, ``status`` and
  ``status_date`` are used when present).

Counting rules (the ones a planner has to defend):

* each inhabitant counts once, however many CPTS cover the commune; a commune only partly in a
  CPTS (``share`` < 1) counts its share, and the shares of a commune are capped at 1;
* a commune is *covered* when at least one CPTS includes it (even partly) and a *gap* otherwise,
  so ``n_covered_communes + n_gap_communes == n_communes``; the uncovered remainder of partly
  covered communes is in ``gap_population``, so ``covered_population + gap_population ==
  population``;
* a commune is an *overlap* when it is in two or more CPTS; ``overlap_population`` counts the
  inhabitants claimed more than once (``population * min(1, sum of shares - 1)``), so a commune
  shared out between CPTS (shares adding up to 1 or less) is listed with no inhabitant counted
  twice;
* a CPTS that straddles départements counts in each through its communes.

Where a commune's population is missing (it stays missing in the reference data) it counts as
zero and ``n_communes_without_population`` says how many.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from .errors import CptsGeoWarning, InputError

__all__ = [
    "SIZE_CLASSES",
    "commune_coverage",
    "coverage",
    "filter_territories",
    "find_gaps",
    "find_overlaps",
    "size_class",
    "territory_geometries",
]

By = Literal["departement", "region", "nation", "cpts"]

#: ACI size classes ("taille") of a CPTS by population: (class, lower bound, upper bound).
#: Taille 1 < 40,000 inhabitants; 2: 40,000 to 80,000; 3: more than 80,000 up to 175,000;
#: 4: > 175,000. The texts give both ends "between"; a population exactly at a bound goes to
#: the smaller class (lower bound inclusive for class 2 only, upper bounds inclusive).
SIZE_CLASSES: tuple[tuple[int, int, float], ...] = (
    (1, 0, 40_000),
    (2, 40_000, 80_000),
    (3, 80_000, 175_000),
    (4, 175_000, float("inf")),
)
_NATION = "France"


def size_class(population: float | int | None) -> int | None:
    """ACI size class (taille 1 to 4) of a CPTS of this population.

    Parameters
    ----------
    population : number or None
        Inhabitants of the CPTS territory.

    Returns
    -------
    int or None
        1 (< 40,000), 2 (40,000 to 80,000), 3 (over 80,000 up to 175,000), 4 (> 175,000);
        None when the population is missing.

    Examples
    --------
    >>> size_class(11_000), size_class(51_000), size_class(96_850), size_class(200_000)
    (1, 2, 3, 4)
    """
    if population is None or pd.isna(population):
        return None
    if population < 0:
        return None
    if population < SIZE_CLASSES[0][2]:
        return SIZE_CLASSES[0][0]
    return next(cls for cls, _, high in SIZE_CLASSES[1:] if population <= high)


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
def _check_communes(communes: pd.DataFrame, needed: Iterable[str]) -> None:
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
    from .reference import _arrondissements

    arr = _arrondissements()
    codes = set(communes["insee"].to_numpy(dtype=object))
    both = sorted({city for a, city in arr.items() if a in codes and city in codes})
    if both:
        raise InputError(
            f"`communes` holds both the cit{'y' if len(both) == 1 else 'ies'} {both} and "
            "arrondissements of it: its inhabitants would count twice; load the communes with "
            "or without `arrondissements=True`, not both"
        )


def _isin(values: pd.Series | np.ndarray, allowed: Iterable[object]) -> np.ndarray:
    """Boolean mask of ``values`` found in ``allowed``.

    A plain set lookup: much faster than ``Series.isin`` on pandas' Arrow-backed strings for the
    sizes met here.
    """
    allowed = allowed if isinstance(allowed, set | frozenset) else set(allowed)
    items = np.asarray(values, dtype=object)  # one C conversion, not Arrow scalar by scalar
    return np.fromiter((v in allowed for v in items), dtype=bool, count=len(items))


def _group_lists(keys: Iterable[object], values: Iterable[object]) -> dict[object, list]:
    """``{key: [values...]}`` in input order, without pandas' per-group overhead."""
    out: dict[object, list] = {}
    keys, values = np.asarray(keys, dtype=object), np.asarray(values, dtype=object)
    for k, v in zip(keys, values, strict=True):
        out.setdefault(k, []).append(v)
    return out


def _looks_validated(t: pd.DataFrame) -> bool:
    """Tell whether ``t`` has the types :func:`cpts_geo.read_territories` produces."""
    from .reference import _current_codes
    from .territories import STATUSES

    if t["cpts"].isna().any() or t["insee"].isna().any():
        return False
    current = _current_codes()
    if not all(isinstance(c, str) and c in current for c in t["insee"].to_numpy(dtype=object)):
        return False
    if "cpts_id" in t.columns and t["cpts_id"].isna().any():
        return False
    if "share" in t.columns and (
        not pd.api.types.is_float_dtype(t["share"]) or t["share"].isna().any()
    ):
        return False
    if "status" in t.columns:
        values = set(t["status"].dropna().astype(str))
        if not values <= set(STATUSES):
            return False
    return "status_date" not in t.columns or pd.api.types.is_datetime64_any_dtype(
        t["status_date"]
    )


def _membership(territories: pd.DataFrame) -> pd.DataFrame:
    """Validate the membership table and fill the optional columns.

    A table with the types :func:`cpts_geo.read_territories` produces is taken as it is; any
    other table (codes as numbers, shares as "50 %", statuses in free spelling, French dates...)
    goes through :func:`cpts_geo.read_territories`, which normalises it or reports every
    problem with its row, instead of guessing.
    """
    if not isinstance(territories, pd.DataFrame):
        raise InputError(
            f"`territories` was a {type(territories).__name__}; expected the table of "
            "cpts_geo.read_territories()"
        )
    missing = [c for c in ("cpts", "insee") if c not in territories.columns]
    if missing:
        raise InputError(
            f"`territories` lacks column(s) {missing}; pass the table returned by "
            f"cpts_geo.read_territories() (columns found: {list(territories.columns)})"
        )
    from .territories import STATUSES, _slug, read_territories

    if not _looks_validated(territories):
        cols = [c for c in ("cpts", "cpts_id", "insee", "share", "status", "status_date",
                            "source") if c in territories.columns]
        territories = read_territories(pd.DataFrame(territories[cols]).reset_index(drop=True))
    m = pd.DataFrame(
        {
            "cpts": territories["cpts"].astype(str).to_numpy(),
            "insee": territories["insee"].astype(str).to_numpy(),
        }
    )
    if "cpts_id" in territories.columns:
        m["cpts_id"] = territories["cpts_id"].astype(str).to_numpy()
    else:
        m["cpts_id"] = m["cpts"].map(_slug)
    if "share" in territories.columns:
        m["share"] = territories["share"].to_numpy(dtype=float)
    else:
        m["share"] = 1.0
    if ((m["share"] <= 0) | (m["share"] > 1)).any():
        bad = m.loc[(m["share"] <= 0) | (m["share"] > 1)].iloc[0]
        raise InputError(
            f"`territories` share of {bad['insee']} in {bad['cpts']!r} is {bad['share']}; "
            "expected a fraction in (0, 1]"
        )
    if "status" in territories.columns:
        m["status"] = pd.Categorical(
            territories["status"].astype(object).to_numpy(), categories=list(STATUSES),
            ordered=True,
        )
    else:
        m["status"] = pd.Categorical([None] * len(m), categories=list(STATUSES), ordered=True)
    if "status_date" in territories.columns:
        m["status_date"] = pd.to_datetime(territories["status_date"].to_numpy())
    else:
        m["status_date"] = pd.NaT
    return m


def filter_territories(
    territories: pd.DataFrame,
    *,
    as_of: date | datetime | str | None = None,
    statuses: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Keep the CPTS that had reached a status by a date.

    Parameters
    ----------
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of : date or str, optional
        Keep the CPTS whose ``status_date`` is on or before this date (ISO ``2021-01-01`` or
        French ``07/12/2020``, day first). CPTS without a date are left out, with a warning
        naming them (their existence at that date is unknown).
    statuses : iterable of str, optional
        Keep the CPTS whose status is one of these (French labels or simple spellings, e.g.
        ``["ACI signé"]``).

    Returns
    -------
    pandas.DataFrame
        The membership rows kept (a copy).

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
    m = _membership(territories)
    keep = np.ones(len(m), dtype=bool)
    if as_of is not None:
        from .territories import _parse_date

        try:  # the territory files' parser: ISO, or French day first (07/12/2020)
            when = _parse_date(as_of)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"`as_of` was {as_of!r}; expected a date such as 2021-01-01 or 07/12/2020"
            ) from exc
        if when is None or pd.isna(when):
            raise InputError(
                f"`as_of` was {as_of!r}; expected a date such as 2021-01-01 or 07/12/2020"
            )
        undated = m["status_date"].isna()
        if undated.any():
            names = sorted(m.loc[undated, "cpts"].unique())
            warnings.warn(
                f"{len(names)} CPTS have no status_date and are left out of as_of={when.date()}: "
                + ", ".join(names),
                CptsGeoWarning,
                stacklevel=2,
            )
        keep &= (m["status_date"] <= when).to_numpy()
    if statuses is not None:
        from .territories import normalize_status

        if isinstance(statuses, str):
            statuses = [statuses]
        wanted = {normalize_status(s) for s in statuses}
        keep &= m["status"].isin(wanted).to_numpy()
    out = m[keep].reset_index(drop=True)
    out.attrs = dict(territories.attrs)
    return out


def _harmonize(
    communes: pd.DataFrame, m: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bring communes and membership to the same granularity in Paris, Lyon and Marseille.

    A city listed whole while ``communes`` has its arrondissements is expanded to them; an
    arrondissement listed while ``communes`` has the city whole makes the city be replaced by
    its arrondissements (from the bundle, same population year), so that the city's total stays
    right either way.
    """
    from .reference import _arrondissements, load_communes

    arr = _arrondissements()
    codes = set(communes["insee"].to_numpy(dtype=object))
    listed = set(m["insee"].to_numpy(dtype=object))
    # 1. city listed whole, communes at arrondissement level -> expand the membership
    cities_split = {c for c in set(arr.to_numpy()) if c not in codes and c in listed}
    cities_split = {c for c in cities_split if codes & set(arr.index[arr == c])}
    if cities_split:
        rows = m[_isin(m["insee"], cities_split)]
        expanded = rows.merge(
            pd.DataFrame({"insee": arr.to_numpy(), "arm": arr.index}), on="insee"
        )
        expanded = expanded.assign(insee=expanded.pop("arm"))
        m = pd.concat([m[~_isin(m["insee"], cities_split)], expanded], ignore_index=True)
    # 2. arrondissements listed, city whole in communes -> split the city in communes
    arm_codes = set(arr.index)
    arms_listed = [a for a in listed if a in arm_codes and a not in codes]
    cities = {arr[a] for a in arms_listed if arr[a] in codes}
    if cities:
        year = communes.attrs.get("population_year")
        deps = sorted({c[:2] for c in cities})
        arms = load_communes(deps, arrondissements=True, year=year)
        arms = arms[arms["insee"].map(arr).isin(cities)].copy()
        # keep each city's total as `communes` has it, whatever vintage that is
        city_pop = pd.to_numeric(
            communes.set_index("insee").loc[sorted(cities), "population"], errors="coerce"
        )
        arm_sum = arms.groupby(arms["insee"].map(arr))["population"].sum()
        mismatch = [c for c in cities if pd.notna(city_pop[c]) and arm_sum[c] != city_pop[c]]
        if mismatch:
            factor = arms["insee"].map(arr).map(city_pop / arm_sum).astype(float)
            arms["population"] = pd.array(
                (arms["population"].astype(float) * factor).round(), dtype="Int64"
            )
            warnings.warn(
                f"the population year of `communes` is not known: the arrondissements of "
                f"{', '.join(sorted(mismatch))} were scaled to the city's population in "
                "`communes` (load the communes with cpts_geo.load_communes to avoid this)",
                CptsGeoWarning,
                stacklevel=4,
            )
        keep = [c for c in communes.columns if c in arms.columns]
        attrs = dict(communes.attrs)
        communes = pd.concat(
            [communes[~_isin(communes["insee"], cities)], arms[keep]], ignore_index=True
        )
        if isinstance(communes, gpd.GeoDataFrame) or "geometry" in communes.columns:
            communes = gpd.GeoDataFrame(communes, geometry="geometry", crs=4326)
        communes = communes.sort_values("insee").reset_index(drop=True)
        communes.attrs = attrs
        # the city may also be listed whole by some CPTS: expand those rows too
        if set(m["insee"].to_numpy(dtype=object)) & cities:
            return _harmonize(communes, m)
    return communes, m


def _prepare(
    communes: pd.DataFrame,
    territories: pd.DataFrame,
    as_of: date | datetime | str | None,
    statuses: Iterable[str] | None,
    needed: Iterable[str] = ("insee", "population"),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    _check_communes(communes, needed)
    if as_of is not None or statuses is not None:
        m = filter_territories(territories, as_of=as_of, statuses=statuses)
    else:
        m = _membership(territories)
    dup = m.duplicated(["cpts_id", "insee"])
    if dup.any():
        first = m[dup].iloc[0]
        raise InputError(
            f"`territories` lists commune {first['insee']} twice in CPTS {first['cpts']!r}"
        )
    m.attrs = {}  # no per-group deep copies of the input's attrs in the computations
    communes, m = _harmonize(communes, m)
    return communes, m


def _per_commune(communes: pd.DataFrame, m: pd.DataFrame) -> pd.DataFrame:
    """Per-commune coverage figures aligned on ``communes`` (by position)."""
    inside = m[_isin(m["insee"], set(communes["insee"].to_numpy(dtype=object)))]
    g = inside.groupby("insee", sort=False)
    claimed = g["share"].sum()
    n_cpts = g["cpts_id"].nunique()
    pop = pd.to_numeric(communes["population"], errors="coerce").astype(float)
    codes = communes["insee"]
    out = pd.DataFrame(index=communes.index)
    out["n_cpts"] = codes.map(n_cpts).fillna(0).astype(int).to_numpy()
    out["claimed_share"] = codes.map(claimed).fillna(0.0).to_numpy()
    out["covered_share"] = np.minimum(out["claimed_share"], 1.0)
    out["population_f"] = pop.fillna(0.0).to_numpy()
    out["pop_missing"] = pop.isna().to_numpy()
    out["covered_population"] = out["population_f"] * out["covered_share"]
    out["overlap"] = out["n_cpts"] >= 2
    out["overlap_population"] = out["population_f"] * np.clip(
        out["claimed_share"] - 1.0, 0.0, 1.0
    )
    return out


def commune_coverage(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: date | datetime | str | None = None,
    statuses: Iterable[str] | None = None,
) -> gpd.GeoDataFrame:
    """Which CPTS each commune belongs to.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`filter_territories`.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``communes`` (Paris, Lyon, Marseille split into arrondissements where the
        territories are defined that way) with ``n_cpts``, ``cpts`` (names joined by "; "),
        ``cpts_ids``, ``status`` (the most advanced status among its CPTS),
        ``claimed_share`` (sum of the shares), ``covered_share`` (capped at 1),
        ``covered_population``, ``covered`` (bool) and ``overlap`` (bool).

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": ["SEG"] * 3, "insee": ["38421", "38309", "38158"]})
    >>> cc = commune_coverage(load_communes("38"), t)
    >>> int(cc["covered"].sum()), int(cc["n_cpts"].max())
    (3, 1)
    """
    communes, m = _prepare(communes, territories, as_of, statuses)
    return _commune_coverage(communes, m)


def _commune_coverage(communes: pd.DataFrame, m: pd.DataFrame) -> gpd.GeoDataFrame:
    """:func:`commune_coverage` on frames already prepared (validated, same granularity)."""
    per = _per_commune(communes, m)
    known = set(communes["insee"].to_numpy(dtype=object))
    inside = m[_isin(m["insee"], known)].sort_values(["insee", "cpts"])
    names = {k: "; ".join(dict.fromkeys(v))
             for k, v in _group_lists(inside["insee"], inside["cpts"]).items()}
    ids = {k: "; ".join(dict.fromkeys(v))
           for k, v in _group_lists(inside["insee"], inside["cpts_id"]).items()}
    status = inside.groupby("insee", sort=False)["status"].max()
    out = communes.copy()
    out["n_cpts"] = per["n_cpts"].to_numpy()
    out["cpts"] = out["insee"].map(names)
    out["cpts_ids"] = out["insee"].map(ids)
    out["status"] = pd.Categorical(
        out["insee"].map(status), categories=m["status"].cat.categories, ordered=True
    )
    out["claimed_share"] = per["claimed_share"].to_numpy()
    out["covered_share"] = per["covered_share"].to_numpy()
    out["covered_population"] = per["covered_population"].to_numpy()
    out["covered"] = (per["n_cpts"] > 0).to_numpy()
    out["overlap"] = per["overlap"].to_numpy()
    out.attrs = dict(communes.attrs)
    return out


# ---------------------------------------------------------------------------------------------
# Coverage tables
# ---------------------------------------------------------------------------------------------
def coverage(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    by: By = "departement",
    *,
    as_of: date | datetime | str | None = None,
    statuses: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Share of the population covered by CPTS, by area or by CPTS.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`); the areas reported are those of these
        communes, so load every département you want figures for.
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    by : {"departement", "region", "nation", "cpts"}
        Level of the table.
    as_of : date or str, optional
        Count only the CPTS whose status date is on or before this date.
    statuses : iterable of str, optional
        Count only the CPTS with one of these statuses (e.g. ``["ACI signé"]``).

    Returns
    -------
    pandas.DataFrame
        For an area level, one row per area: ``departement``/``region``/``nation`` and ``nom``,
        ``population``, ``covered_population``, ``coverage_rate`` (0 to 1), ``n_communes``,
        ``n_covered_communes``, ``n_cpts``, ``n_overlap_communes``, ``overlap_population``,
        ``n_gap_communes``, ``gap_population``, ``n_communes_without_population``.
        For ``by="cpts"``, one row per CPTS: ``cpts``, ``cpts_id``, ``status``, ``status_date``,
        ``population`` (its communes' populations times their shares), ``n_communes``,
        ``departements`` (comma-separated), ``size_class``, ``area_km2`` (whole communes),
        ``n_parts`` (groups of communes that share a border), ``n_overlap_communes``.
        ``attrs`` carries the vintage of ``communes``.

    Raises
    ------
    InputError
        If a frame is not what cpts_geo produces, or a filter is malformed.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": ["SEG"] * 3, "insee": ["38421", "38309", "38158"]})
    >>> table = coverage(load_communes("38"), t)
    >>> table[["departement", "n_communes", "n_covered_communes", "n_cpts"]].values.tolist()
    [['38', 512, 3, 1]]
    """
    if by not in ("departement", "region", "nation", "cpts"):
        raise InputError(
            f"`by` was {by!r} but is expected to be one of 'departement', 'region', 'nation', "
            "'cpts'"
        )
    if by == "cpts":
        return _cpts_table(communes, territories, as_of=as_of, statuses=statuses)
    needed = ["insee", "population"] + ([by] if by != "nation" else [])
    communes, m = _prepare(communes, territories, as_of, statuses, needed)
    per = _per_commune(communes, m)
    key = (
        pd.Series(_NATION, index=communes.index)
        if by == "nation"
        else communes[by].astype(str)
    )
    frame = pd.DataFrame(
        {
            by: key.to_numpy(),
            "insee": communes["insee"].to_numpy(),
            "population": per["population_f"].to_numpy(),
            "covered_population": per["covered_population"].to_numpy(),
            "covered": (per["n_cpts"] > 0).to_numpy(),
            "overlap": per["overlap"].to_numpy(),
            "overlap_population": per["overlap_population"].to_numpy(),
            "pop_missing": per["pop_missing"].to_numpy(),
        }
    )
    g = frame.groupby(by, sort=True)
    out = pd.DataFrame(
        {
            "population": g["population"].sum(),
            "covered_population": g["covered_population"].sum(),
            "n_communes": g.size(),
            "n_covered_communes": g["covered"].sum(),
            "n_overlap_communes": g["overlap"].sum(),
            "overlap_population": g["overlap_population"].sum(),
            "n_communes_without_population": g["pop_missing"].sum(),
        }
    )
    # CPTS present in each area (through at least one of its communes)
    area_of = dict(zip(frame["insee"], frame[by], strict=True))
    present = m.assign(area=m["insee"].map(area_of)).dropna(subset=["area"])
    out["n_cpts"] = present.groupby("area")["cpts_id"].nunique().reindex(out.index).fillna(0)
    out["n_gap_communes"] = out["n_communes"] - out["n_covered_communes"]
    out["gap_population"] = out["population"] - out["covered_population"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["coverage_rate"] = out["covered_population"] / out["population"].where(
            out["population"] > 0
        )
    out = out.reset_index()
    if by == "nation":
        out["nom"] = _NATION
    else:
        from .reference import _unit_names

        out["nom"] = out[by].map(_unit_names()[by])
    ints = ["population", "n_communes", "n_covered_communes", "n_cpts", "n_overlap_communes",
            "n_gap_communes", "n_communes_without_population"]
    for col in ints:
        out[col] = out[col].round().astype("int64")
    for col in ("covered_population", "overlap_population", "gap_population"):
        out[col] = out[col].round(1)
    cols = [by, "nom", "population", "covered_population", "coverage_rate", "n_communes",
            "n_covered_communes", "n_cpts", "n_overlap_communes", "overlap_population",
            "n_gap_communes", "gap_population", "n_communes_without_population"]
    out = out[cols]
    out.attrs = dict(communes.attrs)
    return out


def _graph_parts(codes: np.ndarray, links: pd.DataFrame) -> np.ndarray:
    """Label the connected groups of ``codes`` (shared border > 0), by position."""
    pos = pd.Series(np.arange(len(codes)), index=pd.Index(codes))
    known = set(pos.index)
    sub = links[_isin(links["a"], known) & _isin(links["b"], known)
                & (links["length_km"] > 0).to_numpy()]
    graph = coo_array(
        (np.ones(len(sub)), (pos[sub["a"]].to_numpy(), pos[sub["b"]].to_numpy())),
        shape=(len(codes), len(codes)),
    )
    _, labels = connected_components(graph, directed=False)
    return labels


def _parts_per_group(
    rows: pd.DataFrame, links: pd.DataFrame, no_geometry: set[str] | frozenset[str] = frozenset()
) -> pd.Series:
    """Count the connected groups of communes of each CPTS, all CPTS at once.

    Nodes are the (cpts_id, insee) rows; two rows are joined when they are in the same CPTS and
    their communes share a border of positive length. Communes without a boundary
    (``no_geometry``) cannot be placed, so they do not count as parts of their own, unless a
    CPTS has nothing else.
    """
    nodes = rows.reset_index(drop=True)
    nodes["node"] = np.arange(len(nodes))
    edges = links[(links["length_km"] > 0) & (links["b"] != "")][["a", "b"]]
    pairs = nodes.merge(edges, left_on="insee", right_on="a").merge(
        nodes, left_on=["cpts_id", "b"], right_on=["cpts_id", "insee"], suffixes=("", "_b")
    )
    graph = coo_array(
        (np.ones(len(pairs)), (pairs["node"].to_numpy(), pairs["node_b"].to_numpy())),
        shape=(len(nodes), len(nodes)),
    )
    _, labels = connected_components(graph, directed=False)
    nodes["label"] = labels
    placed = nodes[~_isin(nodes["insee"], no_geometry)] if no_geometry else nodes
    counts = placed.groupby("cpts_id", sort=False)["label"].nunique()
    return counts.reindex(nodes["cpts_id"].unique()).fillna(
        nodes.groupby("cpts_id", sort=False)["label"].nunique()
    ).astype(int)


def _same_granularity(
    links: pd.DataFrame, communes: pd.DataFrame, m: pd.DataFrame
) -> pd.DataFrame:
    """Drop the links to Paris, Lyon, Marseille at the granularity not in use.

    The bundled contiguity lists both a city and its arrondissements as neighbours of the
    communes around it; only the granularity of ``communes`` (or, for a city outside it, of the
    membership table) describes who the neighbour is.
    """
    from .reference import _arrondissements

    arr = _arrondissements()
    in_use = set(communes["insee"].to_numpy(dtype=object)) | set(
        m["insee"].to_numpy(dtype=object))
    split = {city for a, city in arr.items() if a in in_use}
    drop = split | {a for a, city in arr.items() if city not in split}
    return links[~_isin(links["b"], drop)]


def _links(contiguity: pd.DataFrame | None, codes: Iterable[str]) -> pd.DataFrame:
    if contiguity is None:
        from .reference import load_contiguity

        contiguity = load_contiguity(codes)
    missing = [c for c in ("a", "b", "length_km") if c not in contiguity.columns]
    if missing:
        raise InputError(
            f"`contiguity` lacks column(s) {missing}; expected cpts_geo.load_contiguity()"
        )
    return contiguity


def _cpts_table(
    communes: pd.DataFrame,
    territories: pd.DataFrame,
    *,
    as_of: date | datetime | str | None = None,
    statuses: Iterable[str] | None = None,
    contiguity: pd.DataFrame | None = None,
) -> pd.DataFrame:
    communes, m = _prepare(communes, territories, as_of, statuses,
                           ("insee", "population", "departement"))
    known = set(communes["insee"].to_numpy(dtype=object))
    outside = m[~_isin(m["insee"], known)]
    if len(outside):
        codes = sorted(outside["insee"].unique())
        warnings.warn(
            f"{len(codes)} commune(s) of the territories are not in `communes` and are not "
            f"counted in the CPTS figures (load their départements too): {', '.join(codes[:20])}"
            + (" ..." if len(codes) > 20 else ""),
            CptsGeoWarning,
            stacklevel=3,
        )
    per = _per_commune(communes, m)
    c = pd.DataFrame(
        {
            "insee": communes["insee"].to_numpy(),
            "pop": per["population_f"].to_numpy(),
            "pop_missing": per["pop_missing"].to_numpy(),
            "departement": communes["departement"].astype(str).to_numpy(),
            "area_km2": (
                communes["area_km2"].to_numpy() if "area_km2" in communes.columns else np.nan
            ),
            "overlap": per["overlap"].to_numpy(),
        }
    )
    rows = m[_isin(m["insee"], known)].merge(c, on="insee", how="left")
    rows["pop_share"] = rows["pop"] * rows["share"]
    links = _links(contiguity, rows["insee"].unique())
    no_geometry: set[str] = set()
    if "geometry" in communes.columns:
        no_geometry = set(communes.loc[communes.geometry.isna(), "insee"].to_numpy(dtype=object))
    parts = _parts_per_group(rows[["cpts_id", "insee"]], links, no_geometry)
    g = rows.groupby("cpts_id", sort=False)
    first = m.groupby("cpts_id", sort=False).agg(
        cpts=("cpts", "first"), status=("status", "max"), status_date=("status_date", "max")
    )
    out = pd.DataFrame(
        {
            "cpts": first["cpts"],
            "status": first["status"],
            "status_date": first["status_date"],
            "population": g["pop_share"].sum(),
            "n_communes": g.size(),
            "departements": pd.Series({
                k: ",".join(sorted(set(v)))
                for k, v in _group_lists(rows["cpts_id"], rows["departement"]).items()
            }),
            "area_km2": g["area_km2"].sum(min_count=1),
            "n_parts": pd.Series(parts),
            "n_overlap_communes": g["overlap"].sum(),
            "n_communes_without_population": g["pop_missing"].sum(),
        }
    )
    out.index.name = "cpts_id"
    out = out.reset_index()
    out["n_communes"] = out["n_communes"].fillna(0).astype("int64")
    out["population"] = out["population"].fillna(0.0).round(1)
    out["size_class"] = pd.array([size_class(p) for p in out["population"]], dtype="Int64")
    out["n_parts"] = out["n_parts"].fillna(0).astype("int64")
    out["n_overlap_communes"] = out["n_overlap_communes"].fillna(0).astype("int64")
    out["n_communes_without_population"] = (
        out["n_communes_without_population"].fillna(0).astype("int64")
    )
    out["area_km2"] = out["area_km2"].round(2)
    out["departements"] = out["departements"].fillna("")
    cols = ["cpts", "cpts_id", "status", "status_date", "population", "n_communes",
            "departements", "size_class", "area_km2", "n_parts", "n_overlap_communes",
            "n_communes_without_population"]
    out = out[cols].sort_values(["cpts", "cpts_id"]).reset_index(drop=True)
    out.attrs = dict(communes.attrs)
    return out


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------
def find_overlaps(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: date | datetime | str | None = None,
    statuses: Iterable[str] | None = None,
) -> gpd.GeoDataFrame:
    """Communes in two or more CPTS, with the CPTS involved.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`filter_territories`.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per overlapping commune, most populated first: ``insee``, ``nom``,
        ``departement``, ``population``, ``n_cpts``, ``cpts`` (names joined by "; "),
        ``cpts_ids``, ``claimed_share`` (sum of the shares), ``overlap_population``
        (inhabitants claimed more than once: 0 when the shares add up to 1 or less, as for a
        commune shared out between CPTS), ``geometry``.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": ["A", "A", "B"], "insee": ["38421", "38158", "38158"]})
    >>> find_overlaps(load_communes("38"), t)[["insee", "cpts"]].values.tolist()
    [['38158', 'A; B']]
    """
    cc = commune_coverage(communes, territories, as_of=as_of, statuses=statuses)
    over = cc[cc["overlap"]].copy()
    over["overlap_population"] = (
        pd.to_numeric(over["population"], errors="coerce").fillna(0)
        * np.clip(over["claimed_share"] - 1, 0, 1)
    ).round(1)
    cols = [c for c in ("insee", "nom", "departement", "population", "n_cpts", "cpts",
                        "cpts_ids", "claimed_share", "overlap_population", "geometry")
            if c in over.columns]
    over = over[cols].sort_values(["overlap_population", "insee"], ascending=[False, True])
    out = gpd.GeoDataFrame(over.reset_index(drop=True), geometry="geometry", crs=cc.crs)
    out.attrs = dict(cc.attrs)
    return out


def _outline(geoms: np.ndarray) -> shapely.Geometry | None:
    geoms = geoms[~shapely.is_missing(geoms)]
    if len(geoms) == 0:
        return None
    try:
        merged = shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:  # not a clean coverage (e.g. online data)
        merged = shapely.union_all(geoms)
    if merged.geom_type == "Polygon":
        merged = shapely.MultiPolygon([merged])
    return merged


def find_gaps(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: date | datetime | str | None = None,
    statuses: Iterable[str] | None = None,
    contiguity: pd.DataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Uncovered communes, grouped into gap zones of communes that share a border.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`filter_territories`.
    contiguity : pandas.DataFrame, optional
        Borders between communes (:func:`cpts_geo.load_contiguity`, the default).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per gap zone, largest population first: ``zone`` (1, 2, ...), ``n_communes``,
        ``insee`` and ``noms`` (comma-separated), ``departements``, ``population``,
        ``area_km2``, ``neighbour_cpts`` (CPTS bordering the zone, "; "-separated),
        ``enclave`` (True when every neighbour of the zone belongs to one same CPTS and the zone
        has no border with the sea, a foreign country or a hole of the boundary data),
        ``enclosed_by`` (that CPTS) and ``geometry`` (the zone's outline). A commune without
        geometry is a zone of its own.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> isere = load_communes("38")
    >>> t = pd.DataFrame({"cpts": "Isère", "insee": isere["insee"].drop(index=0)})
    >>> gaps = find_gaps(isere, t)  # Les Abrets en Dauphiné alone, amid Isère communes
    >>> gaps[["insee", "n_communes", "enclave", "enclosed_by"]].values.tolist()
    [['38001', 1, True, 'Isère']]
    """
    communes, m = _prepare(communes, territories, as_of, statuses)
    cc = _commune_coverage(communes, m)
    gaps = cc[~cc["covered"]].reset_index(drop=True)
    codes = gaps["insee"].to_numpy()
    links = _same_granularity(_links(contiguity, codes), communes, m)
    if len(codes) == 0:
        empty = gpd.GeoDataFrame(
            {c: [] for c in ("zone", "n_communes", "insee", "noms", "departements",
                             "population", "area_km2", "neighbour_cpts", "enclave",
                             "enclosed_by")},
            geometry=[], crs=cc.crs,
        )
        empty.attrs = dict(cc.attrs)
        return empty
    labels = _graph_parts(codes, links)
    gaps["label"] = labels
    zone_of = dict(zip(codes, labels, strict=True))
    border = links[_isin(links["a"], zone_of.keys())].copy()
    border["zone"] = border["a"].map(zone_of)
    border = border[border["b"].map(zone_of).fillna(-1).to_numpy() != border["zone"].to_numpy()]
    border = border[border["length_km"] > 0]
    # CPTS of the neighbouring communes (they may lie outside `communes`)
    near = set(border["b"].to_numpy(dtype=object))
    m_near = m[_isin(m["insee"], near)]
    cpts_of = {k: frozenset(v) for k, v in _group_lists(m_near["insee"], m_near["cpts"]).items()}
    borders = dict(iter(border.groupby("zone", sort=False)))  # (groupby has a .keys)
    no_border = border.iloc[:0]
    pop = pd.to_numeric(gaps["population"], errors="coerce")
    rows = []
    for label, grp in gaps.groupby("label", sort=False):
        b = borders.get(label, no_border)
        outside_len = b.loc[b["b"] == "", "length_km"].sum()
        neighbours = b.loc[b["b"] != "", "b"].unique()
        sets = [cpts_of.get(n, frozenset()) for n in neighbours]
        names = sorted(set().union(*sets)) if sets else []
        common = frozenset.intersection(*sets) if sets else frozenset()
        no_geom = grp.geometry.isna().all() if "geometry" in grp.columns else True
        enclave = bool(len(neighbours) and common and outside_len < 1e-3 and not no_geom)
        rows.append(
            {
                "n_communes": len(grp),
                "insee": ", ".join(grp["insee"]),
                "noms": ", ".join(grp["nom"].astype(str)) if "nom" in grp.columns else "",
                "departements": ",".join(sorted(set(grp["departement"].astype(str))))
                if "departement" in grp.columns else "",
                "population": pop[grp.index].sum(min_count=1),
                "area_km2": grp["area_km2"].sum() if "area_km2" in grp.columns else np.nan,
                "neighbour_cpts": "; ".join(names),
                "enclave": enclave,
                "enclosed_by": "; ".join(sorted(common)) if enclave else None,
                "geometry": _outline(grp.geometry.to_numpy())
                if "geometry" in grp.columns else None,
            }
        )
    out = pd.DataFrame(rows)
    out["population"] = pd.array(out["population"].round(), dtype="Int64")
    out["area_km2"] = out["area_km2"].round(2)
    out = out.sort_values(["population", "area_km2", "insee"], ascending=[False, False, True],
                          na_position="last").reset_index(drop=True)
    out.insert(0, "zone", np.arange(1, len(out) + 1))
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=cc.crs)
    out.attrs = dict(cc.attrs)
    return out


def territory_geometries(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: date | datetime | str | None = None,
    statuses: Iterable[str] | None = None,
    contiguity: pd.DataFrame | None = None,
) -> gpd.GeoDataFrame:
    """One outline per CPTS, the union of its communes, with its parts counted.

    The outline is the coverage union of the communes' boundaries (they form a clean coverage in
    the bundle), which is exact and much faster than a generic union.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`filter_territories`.
    contiguity : pandas.DataFrame, optional
        Borders between communes (:func:`cpts_geo.load_contiguity`, the default).

    Returns
    -------
    geopandas.GeoDataFrame
        The columns of ``coverage(..., by="cpts")`` plus ``contiguous`` (its communes form a
        single group sharing borders), ``n_polygons`` (polygons of the outline, counting
        islands and exclaves of communes) and ``geometry`` (MultiPolygon, EPSG:4326).

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": ["SEG"] * 3 + ["Split"] * 2,
    ...                   "insee": ["38421", "38309", "38158", "38421", "38053"]})
    >>> outlines = territory_geometries(load_communes("38"), t)
    >>> outlines[["cpts", "n_parts", "contiguous"]].values.tolist()
    [['SEG', 1, True], ['Split', 2, False]]
    """
    table = _cpts_table(communes, territories, as_of=as_of, statuses=statuses,
                        contiguity=contiguity)
    communes2, m = _prepare(communes, territories, as_of, statuses, ("insee", "geometry"))
    geom_of = pd.Series(communes2.geometry.to_numpy(), index=communes2["insee"].to_numpy())
    m = m[_isin(m["insee"], set(geom_of.index))]
    outlines = {
        cid: _outline(geom_of[grp["insee"]].to_numpy())
        for cid, grp in m.groupby("cpts_id", sort=False)
    }
    geoms = table["cpts_id"].map(outlines)
    out = gpd.GeoDataFrame(table, geometry=geoms.to_numpy(), crs=communes2.crs or 4326)
    out["contiguous"] = out["n_parts"] == 1
    out["n_polygons"] = shapely.get_num_geometries(out.geometry.to_numpy())
    out.attrs = dict(table.attrs)
    return out
