"""CPTS outlines (GeoJSON, GeoPackage, GeoDataFrame) into the communes each one covers.

Each commune is assigned to every CPTS whose outline covers at least ``threshold`` of its area,
computed in Lambert-93 or in the département's own projection overseas. Outlines are checked
(CRS declared, inside France, polygons, valid or repairable) before anything is assigned.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..errors import InputError
from ..geography import departement_of, local_crs
from ..membership import (
    Report,
    _cell_problems,
    _Entry,
    _getter,
    _Group,
    _group_cpts,
    _map_columns,
    _Member,
    _parse_entry,
    _text,
)
from ..sources.bundle import load_departements
from ..sources.loaders import load_communes

__all__: list[str] = []

_OUTLINE_COLUMNS = ("cpts", "cpts_id", "status", "status_date", "source")
_SPLIT_COLUMNS = ["insee", "nom", "cpts", "fraction", "assigned"]
_SIGNIFICANT = 0.1  # an outline covering 10 % of a commune makes it "split" if another does too
_REPORTED = 0.01  # intersections below 1 % of a commune are slivers, not listed
_REPAIR_TOLERANCE = 0.01  # a repaired outline may change area by 1 % at most
# Where French communes are (lon/lat boxes with a margin): metropolitan France and Corsica,
# Antilles, Guyane, La Réunion, Mayotte.
_FRANCE_BOXES = (
    (-6.5, 41.0, 10.5, 51.5),
    (-63.5, 14.0, -60.5, 18.5),
    (-55.0, 1.8, -51.0, 6.2),
    (55.0, -21.6, 56.0, -20.7),
    (44.8, -13.2, 45.5, -12.4),
)


def _local_epsg(insee: str) -> int:
    return local_crs(departement_of(insee))


def _in_france(bounds: np.ndarray) -> np.ndarray:
    ok = np.zeros(len(bounds), dtype=bool)
    for x0, y0, x1, y1 in _FRANCE_BOXES:
        ok |= (
            (bounds[:, 0] >= x0) & (bounds[:, 1] >= y0)
            & (bounds[:, 2] <= x1) & (bounds[:, 3] <= y1)
        )
    return ok


def _revalidate(geoms: np.ndarray) -> np.ndarray:
    """Repair what a reprojection broke (vertices a few mm apart that now cross)."""
    geoms = np.asarray(geoms, dtype=object)
    bad = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = [_polygonal(shapely.make_valid(g)) for g in geoms[bad]]
    return geoms


def _union(geoms: list[shapely.Geometry]) -> shapely.Geometry:
    try:
        return shapely.union_all(geoms)
    except shapely.errors.GEOSException:  # robustness fallback: snap to a 1 cm grid
        return shapely.union_all(_revalidate(np.asarray(geoms, dtype=object)), grid_size=1e-7)


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _check_outlines(
    gdf: gpd.GeoDataFrame, report: Report
) -> tuple[list[shapely.Geometry | None], str]:
    """Validate geometries and CRS; return the geometries in EPSG:4326 (None when invalid)."""
    source = report.source
    if gdf.crs is None:
        raise InputError(
            f"{source}: the outlines have no coordinate reference system (CRS): save the file "
            "with one (EPSG:2154 Lambert-93, or EPSG:4326 longitude/latitude)"
        )
    crs = gdf.crs.to_string()
    geoms: list[shapely.Geometry | None] = []
    for pos, geom in enumerate(gdf.geometry):
        row = pos + 2
        if geom is None or geom.is_empty:
            report.problem(row, "geometry", None, "the feature has no geometry")
            geoms.append(None)
        elif not np.isfinite(shapely.get_coordinates(geom)).all():
            report.problem(
                row, "geometry", geom.geom_type,
                "the outline has coordinates that are not numbers (NaN or infinite): the file "
                "is damaged; export it again from the GIS",
            )
            geoms.append(None)
        elif geom.geom_type not in ("Polygon", "MultiPolygon"):
            report.problem(
                row, "geometry", geom.geom_type,
                f"the feature is a {geom.geom_type}, not a polygon: an outline file holds the "
                "polygon of each CPTS",
            )
            geoms.append(None)
        elif not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            fixed = _polygonal(shapely.make_valid(geom))
            change = abs(fixed.area - geom.area) / max(fixed.area, geom.area, 1e-300)
            if fixed.is_empty or change > _REPAIR_TOLERANCE:
                report.problem(
                    row, "geometry", reason,
                    f"invalid outline ({reason}); repairing it would change its area by "
                    f"{change:.0%}, so it is not repaired automatically: fix it (QGIS: "
                    "Vector > Geometry Tools > Fix Geometries, then check the result)",
                )
                geoms.append(None)
            else:
                report.note("repaired", f"row {row} ({reason})")
                geoms.append(fixed)
        else:
            geoms.append(geom)
    try:
        series = gpd.GeoSeries(geoms, crs=gdf.crs).to_crs(4326)
    except Exception as exc:  # pyproj errors
        raise InputError(f"{source}: cannot transform the outlines from {crs} to longitude/"
                         f"latitude: {exc}") from None
    series = gpd.GeoSeries(_revalidate(series.to_numpy()), crs=4326)
    present = ~(series.isna() | series.is_empty).to_numpy()
    bounds = series.bounds.to_numpy()
    inside = _in_france(np.nan_to_num(bounds, nan=np.inf))
    if present.any() and not (inside & present).any():
        box = np.nanmin(bounds[present, :2], axis=0).tolist() + np.nanmax(
            bounds[present, 2:], axis=0).tolist()
        raise InputError(
            f"{source}: the outlines are not in France in their declared CRS {crs} (bounds in "
            f"longitude/latitude: {[round(b, 2) for b in box]}): the file's CRS is probably "
            "wrong (e.g. Lambert-93 coordinates in a file declared as EPSG:4326)"
        )
    out: list[shapely.Geometry | None] = []
    for pos, geom in enumerate(series):
        if present[pos] and not inside[pos]:
            report.problem(
                pos + 2, "geometry", [round(b, 3) for b in bounds[pos]],
                f"the outline is not in France (longitude/latitude bounds shown) in the "
                f"file's CRS {crs}",
            )
            out.append(None)
        else:
            out.append(geom if present[pos] else None)
    return out, crs


def _reference_communes(
    communes: gpd.GeoDataFrame | None, outlines: gpd.GeoSeries
) -> gpd.GeoDataFrame:
    if communes is None:
        deps = load_departements()
        hit = deps.sindex.query(outlines.to_numpy(), predicate="intersects")[1]
        codes = sorted(set(deps["departement"].iloc[np.unique(hit)]))
        if not codes:
            return gpd.GeoDataFrame({"insee": [], "nom": []}, geometry=[], crs=4326)
        return load_communes(codes, arrondissements=True)
    if communes.crs is None:
        raise InputError("`communes` has no CRS")
    return communes.to_crs(4326)


def _fractions(
    communes: gpd.GeoDataFrame, outlines: gpd.GeoSeries
) -> pd.DataFrame:
    """Share of each commune's area covered by each outline it intersects (local projection)."""
    geoms = communes.geometry.to_numpy()
    o_pos, c_pos = outlines.sindex.query(geoms, predicate="intersects")[::-1]
    if not len(o_pos):
        return pd.DataFrame({"outline": [], "commune": [], "fraction": []})
    epsg = np.array([_local_epsg(str(c)) for c in communes["insee"].to_numpy()[c_pos]])
    fraction = np.zeros(len(c_pos))
    for code in np.unique(epsg):
        sel = epsg == code
        c_ids, c_inv = np.unique(c_pos[sel], return_inverse=True)
        o_ids, o_inv = np.unique(o_pos[sel], return_inverse=True)
        c_geo = _revalidate(gpd.GeoSeries(geoms[c_ids], crs=4326).to_crs(code).to_numpy())
        o_geo = _revalidate(outlines.iloc[o_ids].to_crs(code).to_numpy())
        inter = shapely.area(shapely.intersection(c_geo[c_inv], o_geo[o_inv]))
        area = shapely.area(c_geo[c_inv])
        fraction[sel] = np.where(area > 0, inter / np.where(area > 0, area, 1), 0)
    return pd.DataFrame(
        {"outline": o_pos, "commune": c_pos, "fraction": np.clip(fraction, 0, 1)}
    )


def _outline_members(
    gdf: gpd.GeoDataFrame,
    *,
    communes: gpd.GeoDataFrame | None,
    threshold: float,
    report: Report,
) -> tuple[list[_Entry], list[_Member], dict[str, _Group], pd.DataFrame, list[str]]:
    header = [_text(c) for c in gdf.columns if c != gdf.geometry.name]
    cols, ignored = _map_columns(header, report.source, ["cpts"], _OUTLINE_COLUMNS)
    attributes = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    entries = []
    for pos, values in enumerate(attributes.itertuples(index=False, name=None)):
        if _cell_problems(pos + 2, list(values), header, cols, report):
            continue
        entries.append(_parse_entry(pos + 2, _getter(list(values), header, cols), report))
    geoms, _ = _check_outlines(gdf, report)
    report.raise_problems()
    groups = _group_cpts(entries, {c: header[i] for c, i in cols.items()}, report)
    report.raise_problems()
    order = list(groups)
    shapes = []
    for key in order:
        rows = set(groups[key].rows)
        shapes.append(_union(
            [g for e, g in zip(entries, geoms, strict=True) if e.row in rows and g is not None]
        ))
    outlines = gpd.GeoSeries(shapes, crs=4326)
    ref = _reference_communes(communes, outlines)
    no_geom = ref[ref.geometry.isna() | ref.geometry.is_empty]
    # communes without a boundary cannot be placed under an outline: say so, never drop silently
    for code, nom in zip(no_geom["insee"], no_geom.get("nom", no_geom["insee"]), strict=True):
        report.note("no_geometry", f"{code} {nom}")
    ref = ref[ref.geometry.notna() & ~ref.geometry.is_empty].reset_index(drop=True)
    frac = _fractions(ref, outlines)
    insee = ref["insee"].astype(str).to_numpy()
    noms = ref["nom"].astype(str).to_numpy() if "nom" in ref else insee
    frac["insee"] = insee[frac["commune"].to_numpy()]
    frac["nom"] = noms[frac["commune"].to_numpy()]
    frac["cpts"] = [groups[order[o]].name for o in frac["outline"]]
    frac["assigned"] = frac["fraction"] >= threshold - 1e-9
    members: list[_Member] = []
    entry_of = {e.row: e for e in entries}
    for o, key in enumerate(order):
        g = groups[key]
        mine = frac[frac["outline"] == o].sort_values("insee")
        chosen = mine[mine["assigned"]]
        if chosen.empty:
            best = mine.sort_values("fraction", ascending=False).head(1)
            hint = (
                f" (largest: {best['nom'].iloc[0]} {best['insee'].iloc[0]}, "
                f"{best['fraction'].iloc[0]:.0%})" if len(best) else
                " (it intersects no commune of the reference)"
            )
            report.problem(
                g.rows[0], "geometry", g.name,
                f"the outline of CPTS {g.name!r} covers no commune at {threshold:.0%} or more "
                f"of its area{hint}; lower `threshold` or check the outline",
            )
            continue
        entry = entry_of[g.rows[0]]
        for code in chosen["insee"]:
            members.append(_Member(entry, code, 1.0, False, code, None))
    report.raise_problems()
    split = _split_communes(frac, threshold)
    if not split.empty:
        for code, part in split.groupby("insee", sort=True):
            desc = ", ".join(f"{c} {f:.0%}" for c, f in zip(part["cpts"], part["fraction"],
                                                               strict=True))
            report.note("split", f"{code} {part['nom'].iloc[0]} ({desc})")
    return entries, members, groups, _listed(frac, split), ignored


def _listed(frac: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Every intersection of 1 % or more of a commune, with whether the commune is split."""
    out = frac[frac["fraction"] >= _REPORTED].copy()
    out["split"] = out["insee"].isin(set(split["insee"]))
    out = out.sort_values(["insee", "fraction"], ascending=[True, False])
    return out[[*_SPLIT_COLUMNS, "split"]].reset_index(drop=True)


def _split_communes(frac: pd.DataFrame, threshold: float) -> pd.DataFrame:
    listed = frac[frac["fraction"] >= _REPORTED]
    stats = listed.groupby("insee").agg(
        total=("fraction", "sum"),
        assigned=("assigned", "any"),
        significant=("fraction", lambda s: int((s >= _SIGNIFICANT).sum())),
    )
    split = stats[
        ((~stats["assigned"]) & (stats["total"] >= threshold - 1e-9))
        | (stats["significant"] >= 2)
    ].index
    out = listed[listed["insee"].isin(split)]
    out = out.sort_values(["insee", "fraction"], ascending=[True, False])
    return out[_SPLIT_COLUMNS].reset_index(drop=True)


