"""Coverage of the population by CPTS: by area, by CPTS and by commune.

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
* a CPTS that straddles départements counts in each through its communes;
* a figure always covers the whole area (or CPTS) it is named after: missing communes are loaded
  from the same source and vintage, or the call is refused.

Where a commune's population is missing (it stays missing in the reference data) it counts as
zero and ``n_communes_without_population`` says how many.
"""

from __future__ import annotations

from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError, public
from ..geography import departement_name, region_name
from ..typing import DateLike, Level
from .aci import size_classes
from .inputs import Prepared, prepare

__all__ = [
    "AREA_COLUMNS",
    "CPTS_COLUMNS",
    "area_rates",
    "commune_coverage",
    "commune_figures",
    "coverage",
    "cpts_figures",
    "cpts_table",
]

NATION = "France"

#: Columns of a coverage table by area (after the area's code column).
AREA_COLUMNS = ("nom", "population", "covered_population", "coverage_rate", "n_communes",
                "n_covered_communes", "n_cpts", "n_overlap_communes", "overlap_population",
                "n_gap_communes", "gap_population", "n_communes_without_population")
#: Columns of :func:`cpts_table`.
CPTS_COLUMNS = ("cpts", "cpts_id", "status", "status_date", "population", "n_communes",
                "departements", "size_class", "area_km2", "n_parts", "n_overlap_communes",
                "n_communes_without_population")

_LEVELS = ("departement", "region", "nation")


def _check_level(by: object) -> None:
    if by == "cpts":
        raise InputError("`by` was 'cpts': the table by CPTS is cpts_geo.cpts_table(...)")
    if by not in _LEVELS:
        raise InputError(
            f"`by` was {by!r} but is expected to be one of 'departement', 'region', 'nation'"
        )


# ---------------------------------------------------------------------------------------------
# Pure functions of prepared inputs
# ---------------------------------------------------------------------------------------------
def area_names(by: Level, codes: Iterable[str]) -> list[str]:
    """Names of areas of a level: "France", département or région names."""
    if by == "nation":
        return [NATION for _ in codes]
    name = departement_name if by == "departement" else region_name
    return [name(c) for c in codes]


def area_rates(p: Prepared, by: Level = "departement",
               mask: np.ndarray | None = None) -> pd.DataFrame:
    """Coverage table by area of prepared inputs (``mask``: only these communes' areas).

    See :func:`coverage` for the columns.
    """
    per = p.per_commune
    n = len(p.codes)
    if by == "nation":
        area_of = np.zeros(n, dtype=np.int64)
        codes = np.array([NATION], dtype=object)
    else:
        area_of, codes = p.areas(by)
    if mask is not None and by == "nation":
        area_of = np.where(mask, 0, -1)
    elif mask is not None:  # only the areas of these communes, numbered anew
        used = np.bincount(area_of[mask], minlength=len(codes)) > 0
        renumber = np.cumsum(used) - 1
        area_of = np.where(mask, renumber[area_of], -1)
        codes = codes[used]
    k = len(codes)
    sel = area_of >= 0
    inv = area_of[sel]

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(inv, weights=np.asarray(values, dtype=float)[sel], minlength=k)

    population = total(p.population)
    covered = total(per["covered_population"].to_numpy())
    n_communes = np.bincount(inv, minlength=k)
    n_covered = total(per["covered"].to_numpy())
    # CPTS present in each area (through at least one of its communes)
    ins_area = area_of[p.inside["pos"].to_numpy()]
    here = ins_area >= 0
    pairs = np.unique(ins_area[here] * (len(p.cpts_codes[1]) + 1) + p.inside_cpts[here])
    n_cpts = np.bincount(pairs // (len(p.cpts_codes[1]) + 1), minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = covered / np.where(population > 0, population, np.nan)

    def count(values: np.ndarray) -> np.ndarray:
        return np.round(values).astype("int64")

    out = pd.DataFrame({
        by: codes,
        "nom": area_names(by, codes),
        "population": count(population),
        "covered_population": covered.round(1),
        "coverage_rate": rate,
        "n_communes": count(n_communes),
        "n_covered_communes": count(n_covered),
        "n_cpts": count(n_cpts),
        "n_overlap_communes": count(total(per["overlap"].to_numpy())),
        "overlap_population": total(per["overlap_population"].to_numpy()).round(1),
        "n_gap_communes": count(n_communes - n_covered),
        "gap_population": (population - covered).round(1),
        "n_communes_without_population": count(total(p.pop_missing)),
    })
    out = out[[by, *AREA_COLUMNS]]
    out.attrs = dict(p.attrs)
    return out


def _joined(p: Prepared, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Names and ids of the CPTS of each commune ("; "-joined, by name), by commune position.

    ``keep``: only these rows of ``p.inside`` (a boolean mask). Vectorised for the communes in
    one CPTS; a loop over the few in several.
    """
    n = len(p.codes)
    names = np.full(n, None, dtype=object)
    ids = np.full(n, None, dtype=object)
    pos = p.inside["pos"].to_numpy()
    name_of, id_of = p.inside_names, p.inside_cpts
    if keep is not None:
        pos, name_of, id_of = pos[keep], name_of[keep], id_of[keep]
    if not len(pos):
        return names, ids
    all_names, all_ids = p.cpts_names[1], p.cpts_codes[1]
    single = np.bincount(pos, minlength=n)[pos] == 1
    names[pos[single]] = all_names[name_of[single]]
    ids[pos[single]] = all_ids[id_of[single]]
    multi = ~single
    if multi.any():  # by commune, then name (names sort as their numbers), each name once
        order = np.lexsort((name_of[multi], pos[multi]))
        m_pos, m_name, m_id = pos[multi][order], name_of[multi][order], id_of[multi][order]
        once = np.r_[True, (m_pos[1:] != m_pos[:-1]) | (m_name[1:] != m_name[:-1])]
        m_pos, m_name, m_id = m_pos[once], m_name[once], m_id[once]
        starts = np.flatnonzero(np.r_[True, m_pos[1:] != m_pos[:-1]])
        offsets = pa.array(np.r_[starts, len(m_pos)], type=pa.int32())

        def join(values: np.ndarray) -> np.ndarray:
            lists = pa.ListArray.from_arrays(offsets, pa.array(values, type=pa.string()))
            return pc.binary_join(lists, "; ").to_numpy(zero_copy_only=False)

        names[m_pos[starts]] = join(all_names[m_name])
        ids[m_pos[starts]] = join(all_ids[m_id])
    return names, ids


def commune_figures(p: Prepared) -> pd.DataFrame:
    """Which CPTS each commune belongs to, for prepared inputs (see :func:`commune_coverage`)."""
    per = p.per_commune
    ins = p.inside
    names, ids = _joined(p)
    n = len(p.codes)
    codes = ins["status"].cat.codes.to_numpy()
    best = np.full(n, -1, dtype=np.int64)
    np.maximum.at(best, ins["pos"].to_numpy(), codes)
    out = p.communes.copy()
    out["n_cpts"] = per["n_cpts"].to_numpy()
    out["cpts"] = pd.array(names, dtype="str")
    out["cpts_ids"] = pd.array(ids, dtype="str")
    out["status"] = pd.Categorical.from_codes(best, dtype=p.membership["status"].dtype)
    out["claimed_share"] = per["claimed_share"].to_numpy()
    out["covered_share"] = per["covered_share"].to_numpy()
    out["covered_population"] = per["covered_population"].to_numpy()
    out["covered"] = per["covered"].to_numpy()
    out["overlap"] = per["overlap"].to_numpy()
    out.attrs = dict(p.attrs)
    return out


def cpts_figures(p: Prepared) -> pd.DataFrame:
    """One row per CPTS of prepared inputs (see :func:`cpts_table`)."""
    c = p.communes
    m = p.membership
    pos = p.inside["pos"].to_numpy()
    inv, ids = p.cpts_codes
    k = len(ids)
    g = p.inside_cpts
    # one name, status and date per CPTS (the validator sees to it): the first name, the most
    # advanced status and the latest date, missing values aside (NaT is the least int64)
    by_cpts = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[by_cpts], np.arange(k))
    first = by_cpts[starts]

    def latest(values: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(values[by_cpts], starts) if k else values[:0]

    status = latest(m["status"].cat.codes.to_numpy().astype(np.int64))
    date = latest(m["status_date"].to_numpy().astype("datetime64[ns]").view("i8"))
    population = np.bincount(g, weights=p.population[pos] * p.inside["share"].to_numpy(),
                             minlength=k).round(1)
    area = (pd.to_numeric(c["area_km2"], errors="coerce").to_numpy()[pos]
            if "area_km2" in c.columns else np.full(len(pos), np.nan))
    area_sum = np.bincount(g, weights=np.nan_to_num(area), minlength=k)
    has_area = np.bincount(g, weights=~np.isnan(area), minlength=k) > 0
    columns = {
        "cpts_id": ids,
        "status": status,
        "status_date": date.view("datetime64[ns]"),
        "population": population,
        "n_communes": np.bincount(g, minlength=k).astype("int64"),
        "departements": _departements(p, g, pos, k),
        "size_class": size_classes(pd.Series(population)).to_numpy(),
        "area_km2": np.where(has_area, area_sum, np.nan).round(2),
        "n_parts": _parts(p, g, pos, k),
        "n_overlap_communes": np.bincount(g, weights=p.per_commune["overlap"].to_numpy()[pos],
                                          minlength=k).astype("int64"),
        "n_communes_without_population": np.bincount(g, weights=p.pop_missing[pos],
                                                     minlength=k).astype("int64"),
    }
    # by name, then id (ids are sorted; names sort as their numbers)
    order = np.lexsort((np.arange(k), p.cpts_names[0][first]))
    out = pd.DataFrame({"cpts": m["cpts"].array.take(first[order]),
                        **{col: values[order] for col, values in columns.items()}})
    out["status"] = pd.Categorical.from_codes(out["status"].to_numpy(), dtype=m["status"].dtype)
    out["departements"] = out["departements"].astype("str")
    out.attrs = dict(p.attrs)
    return out


def _departements(p: Prepared, g: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
    """The départements of each CPTS's communes, sorted and comma-joined (Arrow's list join)."""
    dep_of, codes = p.areas("departement")
    pairs = np.unique(g * (len(codes) + 1) + dep_of[pos])
    group, dep = pairs // (len(codes) + 1), pairs % (len(codes) + 1)
    bounds = np.searchsorted(group, np.arange(k + 1))
    names = pa.array(np.asarray(codes, dtype=object)[dep], type=pa.large_string())
    lists = pa.LargeListArray.from_arrays(pa.array(bounds, type=pa.int64()), names)
    joined = pc.binary_join(lists, pa.scalar(",", type=pa.large_string()))
    return np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)


def _parts(p: Prepared, g: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
    """Connected groups of communes of each CPTS.

    Communes without a boundary cannot be placed, so they are no part of their own, unless a
    CPTS has nothing else.
    """
    if len(pos) == 0:
        return np.zeros(k, dtype=np.int64)
    labels = p.graph.node_group_components(p.nodes[pos], g)
    placed = p.has_geometry[pos]
    group_of = np.zeros(labels.max() + 1, dtype=np.int64)
    group_of[labels] = g
    n_all = np.bincount(group_of, minlength=k)
    n_placed = np.bincount(group_of[np.unique(labels[placed])], minlength=k)
    return np.where(n_placed > 0, n_placed, n_all).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------
@public
def coverage(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    by: Level = "departement",
    *,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> pd.DataFrame:
    """Share of the population covered by CPTS, by département, région or for France.

    Every area in the table is whole: the communes of an area that ``communes`` lacks are loaded
    from the same source and vintage (with a warning), or the call is refused, so that a figure
    never carries the name of an area it does not cover whole. For a table by CPTS, see
    :func:`cpts_table`.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`): the areas reported are those they touch.
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    by : {"departement", "region", "nation"}
        Level of the table.
    as_of : date or str, optional
        Count only the CPTS whose status date is on or before this date.
    statuses : str or iterable of str, optional
        Count only the CPTS with one of these statuses (e.g. ``["ACI signé"]``).

    Returns
    -------
    pandas.DataFrame
        One row per area: ``departement``/``region``/``nation``, ``nom``, ``population``,
        ``covered_population``, ``coverage_rate`` (0 to 1), ``n_communes``,
        ``n_covered_communes``, ``n_cpts``, ``n_overlap_communes``, ``overlap_population``,
        ``n_gap_communes``, ``gap_population``, ``n_communes_without_population``. ``attrs``
        carries the vintage of ``communes``.

    Raises
    ------
    InputError
        If a frame is not what cpts_geo produces, a filter is malformed, or an area cannot be
        completed.

    See Also
    --------
    cpts_table : the figures of each CPTS.
    commune_coverage : which CPTS each commune belongs to.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": ["SEG"] * 3, "insee": ["38421", "38309", "38158"]})
    >>> table = coverage(load_communes("38"), t)
    >>> table[["departement", "n_communes", "n_covered_communes", "n_cpts"]].values.tolist()
    [['38', 512, 3, 1]]
    """
    _check_level(by)
    needed = ["insee", "population", "departement"] + (["region"] if by == "region" else [])
    p = prepare(communes, territories, as_of=as_of, statuses=statuses, whole=by, needed=needed)
    return area_rates(p, by)


@public
def cpts_table(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
    contiguity: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The figures of each CPTS: population, communes, size class, parts, overlaps.

    A CPTS's figures cover all its communes: communes of the CPTS that ``communes`` lacks are
    loaded from the same source and vintage (with a warning), or the call is refused.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`coverage`.
    contiguity : pandas.DataFrame, optional
        Borders between communes (:func:`cpts_geo.load_contiguity`, the default).

    Returns
    -------
    pandas.DataFrame
        One row per CPTS, by name: ``cpts``, ``cpts_id``, ``status``, ``status_date``,
        ``population`` (its communes' populations times their shares), ``n_communes``,
        ``departements`` (comma-separated), ``size_class`` (ACI taille, see
        :func:`cpts_geo.size_class`), ``area_km2`` (whole communes), ``n_parts`` (groups of
        communes that share a border: 1 for a contiguous CPTS), ``n_overlap_communes``,
        ``n_communes_without_population``.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": ["SEG"] * 3, "insee": ["38421", "38309", "38158"]})
    >>> cpts_table(load_communes("38"), t)[["cpts", "n_communes", "n_parts"]].values.tolist()
    [['SEG', 3, 1]]
    """
    p = prepare(communes, territories, as_of=as_of, statuses=statuses, contiguity=contiguity,
                whole_cpts=True, needed=("insee", "population", "departement"))
    return cpts_figures(p)


@public
def commune_coverage(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> gpd.GeoDataFrame:
    """Which CPTS each commune belongs to.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`coverage`.

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
    return commune_figures(prepare(communes, territories, as_of=as_of, statuses=statuses))
