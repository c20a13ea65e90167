"""Where coverage goes wrong: gap zones, overlaps, and the outline of each CPTS with its parts.

* a *gap zone* is a group of uncovered communes that share borders; it is an *enclave* when every
  neighbour belongs to one same CPTS and the zone touches neither the sea, a foreign country nor
  a hole of the boundary data;
* an *overlap* is a commune in two or more CPTS;
* a CPTS is *not contiguous* when its communes form several groups sharing no border.
"""

from __future__ import annotations

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


def outline(geoms: np.ndarray) -> shapely.Geometry | None:
    """Union of commune geometries (a coverage union when they form a clean coverage)."""
    geoms = np.asarray(geoms, dtype=object)
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if len(geoms) == 0:
        return None
    try:
        merged = shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:  # not a clean coverage (e.g. online data)
        merged = shapely.union_all(geoms)
    if shapely.get_type_id(merged) == 3:  # a Polygon: outlines are MultiPolygons
        merged = shapely.multipolygons([merged])
    return merged


def grouped_outlines(p: Prepared, keys: pd.Series, positions: np.ndarray) -> dict[Any, Any]:
    """The outline of the communes of each group (``keys`` aligned with ``positions``)."""
    geoms = p.communes.geometry.to_numpy()
    if not len(positions):
        return {}
    group, uniques = pd.factorize(keys)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
    parts = np.split(positions[order], bounds[1:])
    return {uniques[group[order][b]]: outline(geoms[part])
            for b, part in zip(bounds, parts, strict=True)}


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
    codes = p.codes[idx]
    crs = _crs(p)
    if len(idx) == 0:
        empty = gpd.GeoDataFrame({col: [] for col in GAP_COLUMNS if col != "geometry"},
                                 geometry=[], crs=crs)
        empty.attrs = dict(p.attrs)
        return empty
    deps = c["departement"].astype(str).to_numpy(dtype=object)[idx]
    graph = p.graph
    node = graph.nodes(codes)
    labels = graph.components(codes)
    if by_departement:
        labels = pd.factorize(pd.Series(labels).astype(str) + "|" + deps)[0]
    # borders of the zones, on node ids: with other zones' or covered communes, and the outside
    zone_of_node = np.full(len(graph.codes), -1, dtype=np.int64)
    zone_of_node[node[node >= 0]] = labels[node >= 0]
    ea, eb, _ = graph.border_arrays(node)
    ez = zone_of_node[ea]
    keep = zone_of_node[eb] != ez
    ez, eb = ez[keep], eb[keep]
    pair = np.unique(ez * len(graph.codes) + eb)  # (zone, neighbour) once
    pz, pn = pair // len(graph.codes), pair % len(graph.codes)
    outside = np.bincount(labels, weights=graph.exterior(node), minlength=labels.max() + 1)
    # CPTS of the neighbouring communes (they may lie outside `communes`)
    m = p.membership
    m_node = graph.nodes(m["insee"])
    cpts_names = m["cpts"].to_numpy(dtype=object)
    cpts_of: dict[int, set[str]] = {}
    wanted = np.zeros(len(graph.codes), dtype=bool)
    wanted[pn] = True
    for nd, name in zip(m_node, cpts_names, strict=True):
        if nd >= 0 and wanted[nd]:
            cpts_of.setdefault(int(nd), set()).add(name)
    pop = p.population[idx]
    missing_pop = p.pop_missing[idx]
    area = (pd.to_numeric(c["area_km2"], errors="coerce").to_numpy()[idx]
            if "area_km2" in c.columns else np.full(len(idx), np.nan))
    noms = (c["nom"].astype(str).to_numpy(dtype=object)[idx] if "nom" in c.columns
            else np.full(len(idx), "", dtype=object))
    geoms = (c.geometry.to_numpy()[idx] if "geometry" in c.columns
             else np.full(len(idx), None, dtype=object))
    no_geom = shapely.is_missing(geoms)
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]])
    ends = np.r_[starts[1:], len(order)]
    p_starts = np.searchsorted(pz, np.arange(labels.max() + 2))
    rows = []
    for s, e in zip(starts, ends, strict=True):
        members = order[s:e]
        label = labels[members[0]]
        neighbours = pn[p_starts[label]:p_starts[label + 1]]
        sets = [cpts_of.get(int(n), set()) for n in neighbours]
        names = sorted(set().union(*sets)) if sets else []
        common = set.intersection(*sets) if sets else set()
        enclave = bool(len(neighbours) and common and outside[label] < 1e-3
                       and not no_geom[members].all())
        rows.append({
            "n_communes": len(members),
            "insee": ", ".join(codes[members]),
            "noms": ", ".join(noms[members]),
            "departements": ",".join(sorted(set(deps[members]))),
            "population": np.nan if missing_pop[members].all() else float(pop[members].sum()),
            "area_km2": float(np.nansum(area[members])) if not np.isnan(area[members]).all()
            else np.nan,
            "neighbour_cpts": "; ".join(names),
            "enclave": enclave,
            "enclosed_by": "; ".join(sorted(common)) if enclave else None,
            "geometry": outline(geoms[members]) if geometry else None,
        })
    out = pd.DataFrame(rows)
    out["population"] = pd.array(out["population"].round(), dtype="Int64")
    out["area_km2"] = out["area_km2"].round(2)
    out = out.sort_values(["population", "area_km2", "insee"], ascending=[False, False, True],
                          na_position="last").reset_index(drop=True)
    out.insert(0, "zone", np.arange(1, len(out) + 1))
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=crs)
    out.attrs = dict(p.attrs)
    return out


def overlap_communes(p: Prepared, cc: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """Communes in two or more CPTS, of prepared inputs (see :func:`find_overlaps`)."""
    per = p.per_commune
    if cc is None:
        where = np.flatnonzero(per["overlap"].to_numpy())
        ins = p.inside
        names, ids = _joined(p, ins[np.isin(ins["pos"].to_numpy(), where)])
        over = p.communes.iloc[where].copy()
        for col in ("n_cpts", "claimed_share"):
            over[col] = per[col].to_numpy()[where]
        over["cpts"] = pd.array(names[where], dtype="str")
        over["cpts_ids"] = pd.array(ids[where], dtype="str")
    else:
        over = cc[cc["overlap"].to_numpy()].copy()
    over["overlap_population"] = (
        pd.to_numeric(over["population"], errors="coerce").fillna(0).to_numpy()
        * np.clip(over["claimed_share"].to_numpy() - 1, 0, 1)
    ).round(1)
    cols = [c for c in ("insee", "nom", "departement", "population", "n_cpts", "cpts",
                        "cpts_ids", "claimed_share", "overlap_population", "geometry")
            if c in over.columns]
    over = over[cols].sort_values(["overlap_population", "insee"], ascending=[False, True])
    out = gpd.GeoDataFrame(over.reset_index(drop=True),
                           geometry="geometry" if "geometry" in cols else None, crs=_crs(p))
    out.attrs = dict(p.attrs)
    return out


def territory_outlines(p: Prepared, table: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """One outline per CPTS of prepared inputs (see :func:`territory_geometries`)."""
    table = cpts_figures(p) if table is None else table
    shapes = grouped_outlines(p, p.inside["cpts_id"], p.inside["pos"].to_numpy())
    out = gpd.GeoDataFrame(table, geometry=table["cpts_id"].map(shapes).to_numpy(),
                           crs=_crs(p))
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
