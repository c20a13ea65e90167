"""Where coverage goes wrong: gap zones, overlaps, and the outline of each CPTS with its parts.

* a *gap zone* is a group of uncovered communes that share borders; it is an *enclave* when every
  neighbour belongs to one same CPTS and the zone touches neither the sea, a foreign country nor
  a hole of the boundary data;
* an *overlap* is a commune in two or more CPTS;
* a CPTS is *not contiguous* when its communes form several groups sharing no border.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..errors import public
from ..typing import DateLike
from .inputs import Prepared, prepare
from .rates import _joined, cpts_figures

__all__ = [
    "GAP_COLUMNS",
    "find_gaps",
    "find_overlaps",
    "gap_zones",
    "outline",
    "overlap_communes",
    "territory_geometries",
    "territory_outlines",
]

#: Columns of :func:`find_gaps`.
GAP_COLUMNS = ("zone", "n_communes", "insee", "noms", "departements", "population", "area_km2",
               "neighbour_cpts", "enclave", "enclosed_by", "geometry")


#: Vertices from which :func:`group_outlines` shares its unions among threads (GEOS works
#: without Python's lock; below this, starting threads costs more than it saves).
PARALLEL_VERTICES = 200_000


def _workers() -> int:
    try:
        return min(4, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return min(4, os.cpu_count() or 1)


def group_outlines(geoms: np.ndarray, group: np.ndarray, k: int) -> np.ndarray:
    """The union of the commune geometries of each group (ids 0 to ``k - 1``), as MultiPolygons.

    One ``shapely.coverage_union_all`` per group (exact and fast on a clean coverage such as the
    bundle's; a generic union where the geometries are no clean coverage, e.g. online data).
    Missing and empty geometries are left out; a group with none has no outline (None).

    The groups go to GEOS in runs, each run one vectorised call on a table of one row per group
    (padded with None, which the union leaves out), so that GEOS works without Python's lock;
    on large inputs the runs are shared among a few threads. Each group's union is the same
    call on the same geometries in the same order either way, so the same outline.
    """
    geoms = np.asarray(geoms, dtype=object)
    group = np.asarray(group, dtype=np.int64)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    order = np.flatnonzero(keep)[np.argsort(group[keep], kind="stable")]
    geoms, bounds = geoms[order], np.searchsorted(group[order], np.arange(k + 1))
    out = np.full(k, None, dtype=object)
    todo = np.flatnonzero(np.diff(bounds))  # groups with geometries; theirs are contiguous
    start, count = bounds[todo], np.diff(bounds)[todo]

    def union(run: np.ndarray) -> None:  # positions in todo, consecutive
        lo = start[run[0]]
        part = geoms[lo:start[run[-1]] + count[run[-1]]]
        table = np.full((len(run), count[run].max()), None, dtype=object)
        table[np.repeat(np.arange(len(run)), count[run]),
              np.arange(len(part)) - np.repeat(start[run] - lo, count[run])] = part
        try:
            out[todo[run]] = shapely.coverage_union_all(table, axis=1)
        except shapely.errors.GEOSException:  # not a clean coverage: group by group
            for i in todo[run]:
                one = geoms[bounds[i]:bounds[i + 1]]
                try:
                    out[i] = shapely.coverage_union_all(one)
                except shapely.errors.GEOSException:
                    out[i] = shapely.union_all(one)

    if len(todo):
        workers = _workers()
        vertices = np.cumsum(shapely.get_num_coordinates(geoms))
        parallel = workers > 1 and vertices[-1] >= PARALLEL_VERTICES
        # runs of about equal work (a few per thread, so that a slow one does not hold all),
        # of at most 64 groups (the padded table stays small)
        n_runs = max(4 * workers if parallel else 1, -(-len(todo) // 64))
        before = np.concatenate([[0], vertices])[start]
        cuts = np.searchsorted(before, np.linspace(0, vertices[-1], n_runs + 1)[1:-1])
        runs = [r for r in np.split(np.arange(len(todo)), np.unique(cuts)) if len(r)]
        if parallel:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(union, runs))
        else:
            for run in runs:
                union(run)
    polygons = np.flatnonzero(shapely.get_type_id(out) == 3)  # outlines are MultiPolygons
    if len(polygons):
        out[polygons] = shapely.multipolygons(out[polygons], indices=np.arange(len(polygons)))
    return out


def outline(geoms: np.ndarray) -> shapely.Geometry | None:
    """Union of commune geometries (see :func:`group_outlines`)."""
    return group_outlines(geoms, np.zeros(len(geoms), dtype=np.int64), 1)[0]


def _crs(p: Prepared) -> object:
    return getattr(p.communes, "crs", None) or 4326


# ---------------------------------------------------------------------------------------------
# Pure functions of prepared inputs
# ---------------------------------------------------------------------------------------------
def gap_zones(p: Prepared, mask: np.ndarray | None = None, *,
              by_departement: bool = False, geometry: bool = True) -> gpd.GeoDataFrame:
    """Gap zones of prepared inputs (see :func:`find_gaps`).

    Parameters
    ----------
    p : Prepared
        The inputs.
    mask : numpy.ndarray of bool, optional
        Only the uncovered communes of this mask form zones.
    by_departement : bool
        Zones never cross a département border (the zones of each département's page).
    geometry : bool
        Compute the zone outlines.
    """
    c = p.communes
    per = p.per_commune
    sel = ~per["covered"].to_numpy()
    if mask is not None:
        sel &= mask
    idx = np.flatnonzero(sel)
    crs = _crs(p)
    if len(idx) == 0:
        empty = gpd.GeoDataFrame({col: [] for col in GAP_COLUMNS if col != "geometry"},
                                 geometry=[], crs=crs)
        empty.attrs = dict(p.attrs)
        return empty
    graph = p.graph
    n_nodes = len(graph.codes)
    node = p.nodes[idx]
    labels = graph.node_components(node)
    dep_of, dep_codes = p.areas("departement")
    if by_departement:
        labels = pd.factorize(labels * (len(dep_codes) + 1) + dep_of[idx])[0]
    k = int(labels.max()) + 1
    # borders of the zones, on node ids: with other zones' or covered communes, and the outside
    zone_of_node = np.full(n_nodes, -1, dtype=np.int64)
    zone_of_node[node[node >= 0]] = labels[node >= 0]
    ea, eb, _ = graph.border_arrays(node)
    ez = zone_of_node[ea]
    keep = zone_of_node[eb] != ez
    pair = np.unique(ez[keep] * n_nodes + eb[keep])  # (zone, neighbour) once
    pz, pn = pair // n_nodes, pair % n_nodes
    n_neighbours = np.bincount(pz, minlength=k)
    outside = np.bincount(labels, weights=graph.exterior(node), minlength=k)
    # CPTS of the neighbouring communes (they may lie outside `communes`), by name
    name_of, names = p.cpts_names
    m_node = p.membership_nodes
    known = m_node >= 0
    nb_cpts = np.unique(m_node[known] * (len(names) + 1) + name_of[known])  # (node, CPTS) once
    nb_node, nb_name = nb_cpts // (len(names) + 1), nb_cpts % (len(names) + 1)
    first = np.searchsorted(nb_node, pn)
    count = np.searchsorted(nb_node, pn, side="right") - first
    zone = np.repeat(pz, count)
    at = np.repeat(first, count) + np.arange(int(count.sum())) - np.repeat(
        np.cumsum(count) - count, count)
    zone_name, times = np.unique(zone * (len(names) + 1) + nb_name[at], return_counts=True)
    zn_zone, zn_name = zone_name // (len(names) + 1), zone_name % (len(names) + 1)
    zn_common = times == n_neighbours[zn_zone]  # a CPTS of every neighbour
    zn_bounds = np.searchsorted(zn_zone, np.arange(k + 1))
    n_common = np.bincount(zn_zone[zn_common], minlength=k)
    # per zone sums
    members_of = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[members_of], np.arange(k + 1))
    n_communes = np.diff(bounds)
    pop_missing = p.pop_missing[idx]
    population = np.where(np.bincount(labels, weights=~pop_missing, minlength=k) > 0,
                          np.bincount(labels, weights=p.population[idx], minlength=k), np.nan)
    area = (pd.to_numeric(c["area_km2"], errors="coerce").to_numpy()[idx]
            if "area_km2" in c.columns else np.full(len(idx), np.nan))
    area_sum = np.where(np.bincount(labels, weights=~np.isnan(area), minlength=k) > 0,
                        np.bincount(labels, weights=np.nan_to_num(area), minlength=k), np.nan)
    no_geom = (np.bincount(labels, weights=~p.has_geometry[idx], minlength=k)
               == n_communes)
    enclave = (n_neighbours > 0) & (n_common > 0) & (outside < 1e-3) & ~no_geom
    # per zone texts
    codes = p.codes[idx][members_of]
    noms = (c["nom"].take(idx).astype(str).to_numpy(dtype=object)[members_of]
            if "nom" in c.columns else np.full(len(idx), "", dtype=object))
    zone_dep = np.unique(labels * (len(dep_codes) + 1) + dep_of[idx])
    zd_bounds = np.searchsorted(zone_dep // (len(dep_codes) + 1), np.arange(k + 1))
    zd_dep = dep_codes[zone_dep % (len(dep_codes) + 1)]
    spans = list(itertools.pairwise(bounds))
    nb_spans = list(itertools.pairwise(zn_bounds))
    out = pd.DataFrame({
        "n_communes": n_communes,
        "insee": [", ".join(codes[a:b]) for a, b in spans],
        "noms": [", ".join(noms[a:b]) for a, b in spans],
        "departements": [",".join(zd_dep[a:b]) for a, b in itertools.pairwise(zd_bounds)],
        "population": pd.array(np.round(population), dtype="Int64"),
        "area_km2": np.round(area_sum, 2),
        "neighbour_cpts": ["; ".join(names[zn_name[a:b]]) for a, b in nb_spans],
        "enclave": enclave,
        "enclosed_by": [("; ".join(names[zn_name[a:b][zn_common[a:b]]]) if e else None)
                        for (a, b), e in zip(nb_spans, enclave, strict=True)],
        "geometry": (group_outlines(c.geometry.to_numpy()[idx], labels, k) if geometry
                     and "geometry" in c.columns else np.full(k, None, dtype=object)),
    })
    out = out.sort_values(["population", "area_km2", "insee"], ascending=[False, False, True],
                          na_position="last").reset_index(drop=True)
    out.insert(0, "zone", np.arange(1, len(out) + 1))
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=crs)
    out.attrs = dict(p.attrs)
    return out


def overlap_communes(p: Prepared, cc: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """Communes in two or more CPTS, of prepared inputs (see :func:`find_overlaps`)."""
    cols = ("insee", "nom", "departement", "population", "n_cpts", "cpts", "cpts_ids",
            "claimed_share", "overlap_population", "geometry")
    if cc is None:  # only the overlapping communes' rows and columns are taken
        c = p.communes
        per = p.per_commune
        overlap = per["overlap"].to_numpy()
        where = np.flatnonzero(overlap)
        claimed = per["claimed_share"].to_numpy()[where]
        population = p.population[where]
        order_by = where  # communes are sorted by code
        joined = _joined(p, overlap[p.inside["pos"].to_numpy()])
    else:
        c = cc[cc["overlap"].to_numpy()]
        where = np.arange(len(c))
        claimed = c["claimed_share"].to_numpy()
        population = pd.to_numeric(c["population"], errors="coerce").fillna(0).to_numpy()
        order_by = pd.factorize(c["insee"], sort=True)[0]
    overlap_population = (population * np.clip(claimed - 1, 0, 1)).round(1)
    order = np.lexsort((order_by, -overlap_population))
    rows = where[order]
    data: dict[str, Any] = {}
    for col in cols:
        if col == "overlap_population":
            data[col] = overlap_population[order]
        elif col in c.columns and col != "geometry":
            data[col] = c[col].array.take(rows)
        elif cc is None and col in ("n_cpts", "claimed_share"):
            data[col] = per[col].to_numpy()[rows]
        elif cc is None and col in ("cpts", "cpts_ids"):
            data[col] = pd.array(joined[col == "cpts_ids"][rows], dtype="str")
    if "geometry" in c.columns:  # the geometry keeps its CRS (geopandas' quick way)
        geometry = c.geometry.array.take(rows)
        data["geometry"] = geometry
        out = gpd.GeoDataFrame(data, geometry="geometry",
                               crs=None if geometry.crs is not None else _crs(p))
    else:
        out = gpd.GeoDataFrame(data, geometry=None, crs=_crs(p))
    out.attrs = dict(p.attrs)
    return out


def territory_outlines(p: Prepared, table: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """One outline per CPTS of prepared inputs (see :func:`territory_geometries`)."""
    table = cpts_figures(p) if table is None else table
    ids = p.cpts_codes[1]
    shapes = group_outlines(p.communes.geometry.to_numpy()[p.inside["pos"].to_numpy()],
                            p.inside_cpts, len(ids))
    at = pd.Index(ids).get_indexer(table["cpts_id"])
    out = gpd.GeoDataFrame(table, geometry=np.where(at >= 0, shapes[at], None), crs=_crs(p))
    out["contiguous"] = out["n_parts"] == 1
    out["n_polygons"] = shapely.get_num_geometries(out.geometry.to_numpy())
    out.attrs = dict(table.attrs)
    return out


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------
@public
def find_gaps(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
    contiguity: pd.DataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Uncovered communes, grouped into gap zones of communes that share a border.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`): the zones are made of these.
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`cpts_geo.coverage`.
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
    p = prepare(communes, territories, as_of=as_of, statuses=statuses, contiguity=contiguity)
    return gap_zones(p)


@public
def find_overlaps(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> gpd.GeoDataFrame:
    """Communes in two or more CPTS, with the CPTS involved.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`cpts_geo.coverage`.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per overlapping commune, most inhabitants claimed twice first: ``insee``,
        ``nom``, ``departement``, ``population``, ``n_cpts``, ``cpts`` (names joined by "; "),
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
    return overlap_communes(prepare(communes, territories, as_of=as_of, statuses=statuses))


@public
def territory_geometries(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
    contiguity: pd.DataFrame | None = None,
) -> gpd.GeoDataFrame:
    """One outline per CPTS, the union of its communes, with its parts counted.

    The outline is the coverage union of the communes' boundaries (they form a clean coverage in
    the bundle), which is exact and much faster than a generic union. Communes of a CPTS that
    ``communes`` lacks are loaded from the same source and vintage (with a warning).

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    as_of, statuses
        Filters, as in :func:`cpts_geo.coverage`.
    contiguity : pandas.DataFrame, optional
        Borders between communes (:func:`cpts_geo.load_contiguity`, the default).

    Returns
    -------
    geopandas.GeoDataFrame
        The columns of :func:`cpts_geo.cpts_table` plus ``contiguous`` (its communes form a
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
    p = prepare(communes, territories, as_of=as_of, statuses=statuses, contiguity=contiguity,
                whole_cpts=True, needed=("insee", "population", "departement", "geometry"))
    return territory_outlines(p)
