"""Everything a map or a figure draws, computed once from prepared inputs, without folium.

Geometries are simplified as a *coverage* (``shapely.coverage_simplify``: neighbours keep the
same shared edges, so no gap or sliver opens between them) and rounded to 5 decimals (about a
metre); CPTS outlines, gap zones and département outlines are unions of the simplified communes,
so that all layers stay consistent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..analysis.diagnostics import gap_zones, outline, territory_outlines
from ..analysis.inputs import Prepared
from ..analysis.proposals import is_proposal, without_proposals
from ..analysis.rates import area_rates, commune_figures, cpts_figures
from ..errors import InputError
from ..geography import LOCAL_CRS, METRO_CRS, city_of_arrondissement
from ..geography import departements as all_departements
from .styles import DECIMALS, colour_graph, fr_int, fr_pct, palette_colour

__all__ = ["Layers", "build_layers"]

Simplify = float | Literal["auto"] | None
_LOCAL_CRS = LOCAL_CRS
_METRO_CRS = METRO_CRS

def auto_tolerance(n_communes: int) -> float:
    """Visvalingam-Whyatt tolerance (metres, about the square root of the area removed)."""
    if n_communes <= 2_000:
        return 250.0
    if n_communes <= 10_000:
        return 500.0
    return 1_000.0


def simplified(
    geoms: np.ndarray, deps: np.ndarray, crs: Any, tolerance: float | None
) -> np.ndarray:
    """Coverage-simplify ``geoms`` (per CRS group), return them in EPSG:4326, rounded."""
    out = np.array(geoms, dtype=object)
    present = ~(shapely.is_missing(out) | shapely.is_empty(out))
    if crs is not None and not gpd.GeoSeries(crs=crs).crs.equals("EPSG:4326"):
        out[present] = gpd.GeoSeries(out[present], crs=crs).to_crs(4326).to_numpy()
    if tolerance:
        local = pd.Series(deps, dtype=object).map(_LOCAL_CRS).fillna(_METRO_CRS).to_numpy()
        for code in pd.unique(local[present]):
            idx = np.flatnonzero(present & (local == code))
            projected = gpd.GeoSeries(out[idx], crs=4326).to_crs(int(code)).to_numpy()
            simple = shapely.coverage_simplify(projected, tolerance)
            out[idx] = gpd.GeoSeries(simple, crs=int(code)).to_crs(4326).to_numpy()
    out[present] = shapely.set_precision(out[present], 10.0**-DECIMALS, mode="pointwise")
    return out


def union(geoms: Any) -> Any:
    """Outline of (simplified) commune geometries; None when there are none."""
    arr = np.array(list(geoms), dtype=object)
    if len(arr) == 0:
        return None
    return outline(arr)



@dataclass
class Layers:
    """Everything a map or a figure draws, computed once."""

    communes: gpd.GeoDataFrame  # drawn communes (simplified), with coverage columns
    scope: np.ndarray  # boolean mask of `communes`: in the départements mapped
    cpts: gpd.GeoDataFrame  # CPTS drawn: coverage(by="cpts") columns + colour + geometry
    cpts_info: pd.DataFrame  # every CPTS of a drawn commune (for tooltips), indexed 0..n-1
    gaps: gpd.GeoDataFrame  # gap zones of the scope (simplified geometry)
    overlaps: gpd.GeoDataFrame  # overlapping communes drawn
    departements: gpd.GeoDataFrame  # outline of each département mapped
    rates: pd.DataFrame  # coverage(by="departement") of the scope
    attrs: dict[str, Any]
    territory_source: str | None
    n_missing_geometry: int
    filters: str  # French description of as_of / statuses, or ""
    overview: bool = False  # départements shaded by rate, no commune layer
    links: dict[str, str] = field(default_factory=dict)  # département -> page (site)
    labels: pd.DataFrame | None = None  # names of the main communes: nom, population, lon, lat
    holes: gpd.GeoDataFrame | None = None  # holes of the boundary data in the area drawn
    n_proposals: int = 0  # CPTS with status "proposition" drawn (in `cpts`, not in `rates`)
    proposed_population: float = 0.0  # inhabitants of the scope only they cover



def tolerance(simplify: Simplify) -> float | None:
    """Check ``simplify``; the tolerance it gives (None for "auto" or no simplification)."""
    if simplify == "auto" or simplify is None or simplify is False:
        return None
    try:
        tolerance = float(simplify)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"`simplify` was {simplify!r}; expected a tolerance in metres, 'auto' or None"
        ) from exc
    if not np.isfinite(tolerance) or tolerance < 0:
        raise InputError(f"`simplify` was {simplify!r}; expected a tolerance >= 0 in metres")
    return tolerance



# ---------------------------------------------------------------------------------------------
# Texts: title, legend, attribution
# ---------------------------------------------------------------------------------------------
def area_label(rates: pd.DataFrame) -> str:
    """Name of the area of the départements in ``rates``: never a whole that is not whole."""
    n = len(rates)
    codes = set(rates["departement"])
    if codes == set(all_departements()):
        return "France"
    if codes == {d for d in all_departements() if d not in LOCAL_CRS}:
        return "France métropolitaine"
    if n > 3:
        return f"{n} départements"
    return ", ".join(f"{nom} ({code})" for code, nom in zip(rates["departement"], rates["nom"],
                                                             strict=True))


def summary(layers: Layers) -> dict[str, Any]:
    pop = float(layers.rates["population"].sum())
    covered = float(layers.rates["covered_population"].sum())
    return {
        "population": pop,
        "covered": covered,
        "rate": covered / pop if pop > 0 else None,
        "area": area_label(layers.rates),
    }


def title_texts(layers: Layers, title: str | None) -> tuple[str, str]:
    """Return the main title and the subtitle, as plain text (escape them for HTML)."""
    s = summary(layers)
    main = title if title is not None else f"Couverture CPTS — {s['area']}"
    year = layers.attrs.get("population_year")
    sub = (
        f"{fr_pct(s['rate'])} de la population couverte par une CPTS "
        f"({fr_int(s['covered'])} / {fr_int(s['population'])} hab."
        + (f", populations légales {year}" if year else "")
        + ")"
    )
    if layers.filters:
        sub += f" — {layers.filters}"
    if layers.n_proposals:
        sub += (f" — {plural_fr(layers.n_proposals, 'proposition')} de CPTS en tirets, non "
                f"comptée{'s' if layers.n_proposals > 1 else ''} "
                f"({fr_int(layers.proposed_population)} hab. de plus)")
    return main, sub


def plural_fr(n: int, word: str) -> str:
    """``"1 proposition"``, ``"19 propositions"``."""
    return f"{n} {word}{'s' if n > 1 else ''}"


def vintage_text(layers: Layers) -> str:
    """The attribution of a map, in French: sources and vintages of communes and territories."""
    from ..io.excel import source_fr

    a = layers.attrs
    parts = []
    if a.get("source"):
        text = source_fr(a)
        parts.append(text[0].upper() + text[1:])
    if a.get("cog_year"):
        parts.append(f"COG {a['cog_year']}")
    if a.get("population_year"):
        census = f" (recensement {a['census_year']})" if a.get("census_year") else ""
        parts.append(f"populations légales en vigueur en {a['population_year']}{census}")
    if not parts:
        parts.append("Communes : source et millésime non précisés (communes.attrs vide)")
    if layers.territory_source:
        parts.append(f"Territoires CPTS : {layers.territory_source}")
    return " · ".join(parts)


def vintage_short(layers: Layers) -> str:
    a = layers.attrs
    parts = []
    if a.get("cog_year"):
        parts.append(f"COG {a['cog_year']}")
    if a.get("population_year"):
        parts.append(f"populations légales {a['population_year']}")
    return "Données : " + (", ".join(parts) if parts else "millésime non précisé")


def filters_text(p: Prepared) -> str:
    """French description of the filters applied (``as_of``, ``statuses``), or ""."""
    parts = []
    if p.as_of is not None:
        parts.append(f"CPTS au {p.as_of.strftime('%d/%m/%Y')}")
    if p.statuses is not None:
        parts.append("statuts : " + ", ".join(p.statuses))
    return " ; ".join(parts)


#: How many of the most populous communes are named on a map (a département's, France's); the
#: map shows those whose names do not overlap a larger one's at its zoom.
LABELS_DEPARTEMENT = 20
LABELS_OVERVIEW = 30
_ARRONDISSEMENT = re.compile(r"\s+\d+(er|e|ème)?\s+arrondissement$", re.IGNORECASE)


def place_labels(communes: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` most populous communes of ``communes``, with a point inside each to name it.

    Paris, Lyon and Marseille split into arrondissements are named once, as the city (their
    arrondissements together). Columns ``nom``, ``population``, ``lon``, ``lat``.

    Examples
    --------
    >>> from cpts_geo import load_communes
    >>> place_labels(load_communes("42"), 3)["nom"].tolist()
    ['Saint-Étienne', 'Saint-Chamond', 'Roanne']
    """
    columns = ["nom", "population", "lon", "lat"]
    if len(communes) == 0 or "geometry" not in communes.columns or n <= 0:
        return pd.DataFrame(columns=columns)
    city = city_of_arrondissement()
    codes = communes["insee"].astype(str).to_numpy(dtype=object)
    key = np.array([city.get(c, c) for c in codes], dtype=object)
    geoms = communes.geometry.to_numpy()
    pop = pd.to_numeric(communes["population"], errors="coerce").fillna(0).to_numpy()
    drawn = ~shapely.is_missing(geoms)
    totals = pd.Series(pop[drawn]).groupby(key[drawn]).sum()
    nom = (communes["nom"].astype(str).to_numpy(dtype=object) if "nom" in communes.columns
           else codes)
    first = pd.Series(nom[drawn]).groupby(key[drawn]).first()
    top = pd.DataFrame({"nom": first, "population": totals})
    top = top.sort_values(["population", "nom"], ascending=[False, True]).head(n)
    to_4326 = communes.crs is not None and not gpd.GeoSeries(crs=communes.crs).crs.equals(
        "EPSG:4326")
    rows = []
    for k, r in top.iterrows():
        members = geoms[drawn & (key == k)]
        shape = members[0] if len(members) == 1 else shapely.union_all(members)
        if to_4326:
            shape = gpd.GeoSeries([shape], crs=communes.crs).to_crs(4326).iloc[0]
        point = shapely.point_on_surface(shape)
        # a city drawn by arrondissement is named once, as the city
        name = _ARRONDISSEMENT.sub("", str(r["nom"])) if len(members) > 1 else str(r["nom"])
        rows.append({"nom": name, "population": int(r["population"]),
                     "lon": round(point.x, DECIMALS), "lat": round(point.y, DECIMALS)})
    return pd.DataFrame(rows, columns=columns)


def boundary_holes(p: Prepared, departements: Sequence[str] | None,
                   decimals: int = DECIMALS) -> gpd.GeoDataFrame | None:
    """The holes of the bundled boundaries bordering these départements (all: None).

    Only for communes from the bundle (the holes are its own); None for other sources.
    """
    if p.attrs.get("source_kind") != "bundled":
        return None
    from ..sources.bundle import load_holes

    holes = load_holes(None if departements is None else list(departements))
    holes = holes[holes.geometry.notna()].reset_index(drop=True)
    holes["geometry"] = shapely.set_precision(holes.geometry.to_numpy(), 10.0**-decimals,
                                              mode="pointwise")
    holes = holes[~shapely.is_empty(holes.geometry.to_numpy())].reset_index(drop=True)
    return holes


def build_layers(
    p: Prepared,
    departements: Sequence[str] | None = None,
    simplify: Simplify = "auto",
) -> Layers:
    """Everything a map of these départements draws (all of ``p.communes`` when None).

    The CPTS that straddle into other départements are drawn whole (their other communes must
    be in ``p.communes``); the coverage rate, gap zones and outlines are those of the
    départements asked for.
    """
    communes = p.communes
    if not isinstance(communes, gpd.GeoDataFrame) or "geometry" not in communes.columns:
        raise InputError("`communes` has no geometry: maps need the boundaries of the communes")
    tol = tolerance(simplify)
    dep_col = communes["departement"].astype(str).to_numpy(dtype=object)
    if departements is None:
        in_scope = np.ones(len(communes), dtype=bool)
    else:
        in_scope = p.scoped(departements)
        absent = sorted(set(departements) - set(dep_col[in_scope]))
        if absent:
            raise InputError(
                f"`departements` asks for {absent} but `communes` has no commune there; load "
                f"them too, e.g. load_communes({absent!r})"
            )
    real = p.memo("without_proposals", without_proposals)  # rates, gaps: real CPTS only
    m = p.membership
    ins = p.inside
    scope_ids = set(ins.loc[in_scope[ins["pos"].to_numpy()], "cpts_id"])
    drawn_pos = np.union1d(np.flatnonzero(in_scope),
                           ins.loc[ins["cpts_id"].isin(scope_ids), "pos"].to_numpy())
    keep = np.zeros(len(communes), dtype=bool)
    keep[drawn_pos] = True
    scope = in_scope[keep]
    cc_all = p.memo("commune_figures", commune_figures)
    cc = cc_all[keep].reset_index(drop=True)
    info_ids = set(ins.loc[keep[ins["pos"].to_numpy()], "cpts_id"])
    table = p.memo("cpts_figures", cpts_figures)
    info = table[table["cpts_id"].isin(info_ids)].reset_index(drop=True)
    rates = area_rates(real, "departement", mask=in_scope)
    if departements is not None and len(departements) == 1:  # the zones of a département page
        national = real.memo("gaps_by_departement", lambda q: gap_zones(q, by_departement=True))
        gaps = national[national["departements"] == departements[0]].reset_index(drop=True)
        gaps["zone"] = np.arange(1, len(gaps) + 1)
    else:
        gaps = gap_zones(real, mask=in_scope, geometry=False)
    proposed_population = float(
        area_rates(p, "departement", mask=in_scope)["covered_population"].sum()
        - rates["covered_population"].sum()) if real is not p else 0.0

    # geometry: simplify the drawn communes as one coverage, rebuild everything from them
    tol = auto_tolerance(len(cc)) if simplify == "auto" else tol
    geoms = simplified(cc.geometry.to_numpy(), cc["departement"].astype(str).to_numpy(),
                       cc.crs, tol)
    geom_of = pd.Series(geoms, index=cc["insee"].to_numpy())
    cc = gpd.GeoDataFrame(cc.drop(columns="geometry"), geometry=geoms, crs=4326)
    cc.attrs = dict(p.attrs)
    n_missing = int((shapely.is_missing(geoms) & scope).sum())

    # CPTS drawn: outline of their drawn communes, colours by adjacency
    cpts = info[info["cpts_id"].isin(scope_ids)].reset_index(drop=True)
    members = m[m["cpts_id"].isin(scope_ids)].groupby("cpts_id")["insee"].agg(list)
    geom_dict = {k: g for k, g in geom_of.items() if g is not None}

    def drawn(codes: Sequence[str]) -> list[Any]:
        return [geom_dict[c] for c in codes if c in geom_dict]

    outlines = [union(drawn(members.get(cid, []))) for cid in cpts["cpts_id"]]
    cpts = gpd.GeoDataFrame(cpts, geometry=outlines, crs=4326)
    colours = colour_graph(outlines, list(cpts["cpts_id"]))
    cpts["colour_index"] = colours
    cpts["colour"] = [palette_colour(c) for c in colours]
    cpts["proposal"] = is_proposal(cpts["status"])

    # gap zones: union of the zone's simplified communes
    if len(gaps):
        zone_geoms = [union(drawn(str(z).split(", "))) for z in gaps["insee"]]
        gaps = gpd.GeoDataFrame(gaps.drop(columns="geometry"), geometry=zone_geoms, crs=4326)
    overlaps = cc[cc["overlap"].to_numpy()].copy()
    overlaps["overlap_population"] = (
        pd.to_numeric(overlaps["population"], errors="coerce").fillna(0)
        * np.clip(overlaps["claimed_share"] - 1, 0, 1)
    )
    # département outlines
    names = dict(zip(rates["departement"], rates["nom"], strict=True))
    dep_rows = [{"departement": str(code), "nom": names.get(str(code), str(code)),
                 "geometry": union(grp.geometry.to_numpy())}
                for code, grp in cc[scope].groupby("departement", sort=True)]
    deps = gpd.GeoDataFrame(pd.DataFrame(dep_rows, columns=["departement", "nom", "geometry"]),
                            geometry="geometry", crs=4326)
    return Layers(
        communes=cc, scope=scope, cpts=cpts, cpts_info=info, gaps=gaps, overlaps=overlaps,
        departements=deps, rates=rates, attrs=dict(p.attrs),
        territory_source=p.territory_source, n_missing_geometry=n_missing,
        filters=filters_text(p), n_proposals=int(cpts["proposal"].sum()),
        proposed_population=proposed_population,
        labels=place_labels(communes[in_scope], LABELS_DEPARTEMENT),
        holes=boundary_holes(p, sorted(set(dep_col[in_scope]))),
    )


def prepare_for_map(
    communes: gpd.GeoDataFrame, territories: pd.DataFrame, departements: object,
    as_of: Any, statuses: Any, whole: Any = None,
) -> tuple[Prepared, list[str] | None]:
    """Prepare the inputs of a map: the CPTS of the départements drawn whole."""
    from ..analysis.inputs import prepare
    from ..geography import normalize_departements

    if not isinstance(communes, gpd.GeoDataFrame):
        raise InputError(
            f"`communes` was a {type(communes).__name__}; expected the GeoDataFrame of "
            "cpts_geo.load_communes()"
        )
    deps = normalize_departements(departements)
    scope = deps if deps is not None else sorted(set(communes["departement"].astype(str)))
    p = prepare(communes, territories, as_of=as_of, statuses=statuses, whole_cpts=scope,
                whole_departements=deps, whole=whole,
                needed=("insee", "population", "departement", "geometry"))
    return p, None if deps is None else sorted(deps)


# ---------------------------------------------------------------------------------------------
# The national overview: départements shaded by coverage, CPTS outlines, gap zones
# ---------------------------------------------------------------------------------------------
#: Tolerances of the overview (metres): département outlines are coverage-simplified together
#: (Visvalingam-Whyatt, shared edges kept), CPTS and gap-zone outlines with Douglas-Peucker.
OVERVIEW_COVERAGE_TOLERANCE = 2_000.0
OVERVIEW_OUTLINE_TOLERANCE = 400.0


#: Decimals of the overview's coordinates (0.001 degree: about 100 m, a quarter of its
#: smallest tolerance; a national map shows a pixel for a kilometre).
OVERVIEW_DECIMALS = 3


def _by_local_crs(geoms: np.ndarray, deps: np.ndarray, simplify: Any,
                  decimals: int = DECIMALS) -> np.ndarray:
    """Apply ``simplify`` to each group of geometries in its local projection (4326 in/out)."""
    out = np.array(geoms, dtype=object)
    present = ~(shapely.is_missing(out) | shapely.is_empty(out))
    local = pd.Series(deps, dtype=object).map(_LOCAL_CRS).fillna(_METRO_CRS).to_numpy()
    for code in pd.unique(local[present]):
        idx = np.flatnonzero(present & (local == code))
        projected = gpd.GeoSeries(out[idx], crs=4326).to_crs(int(code)).to_numpy()
        out[idx] = gpd.GeoSeries(simplify(projected), crs=int(code)).to_crs(4326).to_numpy()
    out[present] = _polygonal(shapely.make_valid(
        shapely.set_precision(out[present], 10.0**-decimals, mode="pointwise")))
    return out


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """The polygons of each geometry (None when nothing is left).

    Rounding can collapse a small part (an islet) into a line or a point, which a map would
    draw as a marker.
    """
    out = np.array(geoms, dtype=object)
    types = shapely.get_type_id(out)
    for i in np.flatnonzero(~np.isin(types, (3, 6))):  # not a Polygon nor a MultiPolygon
        parts = shapely.get_parts(shapely.get_parts(out[i]))  # collections, then multi-parts
        polys = [g for g in parts if shapely.get_type_id(g) == 3 and not g.is_empty]
        out[i] = (None if not polys else polys[0] if len(polys) == 1
                  else shapely.MultiPolygon(polys))
    return out


def _first_departement(codes: pd.Series) -> np.ndarray:
    return codes.astype(str).str.split(",").str[0].to_numpy(dtype=object)


def departement_outlines(p: Prepared) -> gpd.GeoDataFrame:
    """Outline of each département of ``p.communes`` (the coverage union of its communes).

    The bundle's own outlines (the same union, computed when it was built) when the communes
    are the bundle's and every département is whole.
    """
    deps = p.communes["departement"].astype(str).to_numpy(dtype=object)
    codes, inv = np.unique(deps, return_inverse=True)
    counts = np.bincount(inv)
    split = any(c in city_of_arrondissement() for c in p.codes)
    whole = all(int(n) == (all_departements()[d].n_units_arrondissements if split
                           else all_departements()[d].n_communes)
                for d, n in zip(codes, counts, strict=True) if d in all_departements())
    if p.attrs.get("source_kind") == "bundled" and whole:
        from ..sources.bundle import load_departements

        bundled = load_departements(list(codes))
        return gpd.GeoDataFrame({"departement": bundled["departement"].to_numpy()},
                                geometry=bundled.geometry.to_numpy(), crs=4326)
    geoms = p.communes.geometry.to_numpy()
    shapes = [outline(geoms[inv == i]) for i in range(len(codes))]
    return gpd.GeoDataFrame({"departement": codes}, geometry=shapes, crs=4326)


def build_overview(p: Prepared) -> Layers:
    """The layers of the national overview map of prepared inputs.

    Départements shaded by their coverage rate, CPTS outlines and gap zones (zones within each
    département); no commune layer, so that the page stays light (communes are drawn on the
    départements' own maps).
    """
    real = p.memo("without_proposals", without_proposals)
    rates = area_rates(real, "departement")
    outlines_ = p.memo("departement_outlines", departement_outlines)
    deps = outlines_.merge(rates, on="departement")
    deps["geometry"] = _by_local_crs(
        deps.geometry.to_numpy(), deps["departement"].to_numpy(),
        lambda g: shapely.coverage_simplify(g, OVERVIEW_COVERAGE_TOLERANCE), OVERVIEW_DECIMALS)
    deps = gpd.GeoDataFrame(deps, geometry="geometry", crs=4326)

    def dp(g: np.ndarray) -> np.ndarray:
        return shapely.simplify(g, OVERVIEW_OUTLINE_TOLERANCE, preserve_topology=True)

    table = p.memo("cpts_figures", cpts_figures)
    cpts = p.memo("cpts_outlines", lambda q: territory_outlines(q, table))
    cpts = cpts[cpts.geometry.notna()].reset_index(drop=True)
    cpts = gpd.GeoDataFrame(
        cpts.drop(columns="geometry"),
        geometry=_by_local_crs(cpts.geometry.to_numpy(), _first_departement(cpts["departements"]),
                               dp, OVERVIEW_DECIMALS), crs=4326)
    colours = colour_graph(list(cpts.geometry), list(cpts["cpts_id"]))
    cpts["colour_index"] = colours
    cpts["colour"] = [palette_colour(c) for c in colours]
    cpts["proposal"] = is_proposal(cpts["status"])
    gaps = real.memo("gaps_by_departement", lambda q: gap_zones(q, by_departement=True))
    gaps = gpd.GeoDataFrame(
        gaps.drop(columns="geometry"),
        geometry=_by_local_crs(gaps.geometry.to_numpy(), gaps["departements"].to_numpy(), dp,
                               OVERVIEW_DECIMALS),
        crs=4326)
    empty = gpd.GeoDataFrame(
        {col: [] for col in ("insee", "nom", "departement", "population", "cpts_ids",
                             "claimed_share", "overlap", "overlap_population")},
        geometry=[], crs=4326)
    return Layers(
        communes=empty, scope=np.zeros(0, dtype=bool), cpts=cpts, cpts_info=table,
        gaps=gaps, overlaps=empty, departements=deps, rates=rates, attrs=dict(p.attrs),
        territory_source=p.territory_source, n_missing_geometry=0, filters=filters_text(p),
        overview=True, n_proposals=int(cpts["proposal"].sum()),
        proposed_population=0.0 if real is p else float(
            area_rates(p, "departement")["covered_population"].sum()
            - rates["covered_population"].sum()),
        labels=place_labels(p.communes, LABELS_OVERVIEW),
        holes=boundary_holes(p, None, OVERVIEW_DECIMALS),
    )


# ---------------------------------------------------------------------------------------------
# Comparison of two states: communes gained, lost, moved; CPTS outlines before and after
# ---------------------------------------------------------------------------------------------
@dataclass
class ComparisonLayers:
    """Everything a map of the differences between two states draws."""

    communes: gpd.GeoDataFrame  # drawn communes: change ("entered", "left", "moved" or ""), names
    before: gpd.GeoDataFrame  # CPTS outlines before: cpts, cpts_id, change, details
    after: gpd.GeoDataFrame  # CPTS outlines after
    departements: gpd.GeoDataFrame  # outline of each département compared
    areas: pd.DataFrame  # coverage of each département before and after (Comparison.areas)
    cpts: pd.DataFrame  # Comparison.cpts
    attrs: dict[str, Any]
    territory_source: str | None
    n_missing_geometry: int


def _outlines(p: Prepared, ids: set[str], geom_of: pd.Series,
              changes: dict[str, tuple[str, dict[str, Any]]]) -> gpd.GeoDataFrame:
    m = p.membership[p.membership["cpts_id"].isin(ids)]
    rows = []
    for cid, grp in m.groupby("cpts_id", sort=True):
        change, details = changes.get(str(cid), ("unchanged", {}))
        rows.append({"cpts": str(grp["cpts"].iloc[0]), "cpts_id": str(cid), "change": change,
                     "details": details,
                     "geometry": union(geom_of.reindex(grp["insee"]).dropna().to_numpy())})
    frame = pd.DataFrame(rows, columns=["cpts", "cpts_id", "change", "details", "geometry"])
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=4326)


def build_comparison(pa: Prepared, pb: Prepared, departements: Sequence[str],
                     simplify: Simplify = "auto") -> ComparisonLayers:
    """The layers of a map of what changed from ``pa`` to ``pb`` in these départements.

    Both inputs must hold these départements whole, and every commune of the CPTS (before or
    after) that touch them. The figures are those of
    :func:`cpts_geo.analysis.changes.compare_prepared`.
    """
    from ..analysis.changes import compare_prepared, diff, snapshot

    for p in (pa, pb):
        if not isinstance(p.communes, gpd.GeoDataFrame) or "geometry" not in p.communes:
            raise InputError("`communes` has no geometry: maps need the boundaries of the "
                             "communes")
    deps = list(departements)
    comparison = compare_prepared(pa, pb, "departement", deps)
    city_of = city_of_arrondissement()
    # the CPTS of either state that touch the départements, drawn whole
    ids = {p_: set(p_.inside.loc[p_.scoped(deps)[p_.inside["pos"].to_numpy()], "cpts_id"])
           for p_ in (pa, pb)}
    parts = []
    for p_ in (pa, pb):
        members = set(p_.membership.loc[p_.membership["cpts_id"].isin(ids[p_]), "insee"])
        keep = p_.scoped(deps) | p_.communes["insee"].isin(members).to_numpy()
        parts.append(p_.communes.loc[keep, ["insee", "nom", "departement", "population",
                                            "geometry"]])
    drawn = pd.concat(parts, ignore_index=True).drop_duplicates("insee")
    split = {city_of[c] for c in drawn["insee"] if c in city_of}
    drawn = drawn[~drawn["insee"].isin(split)].sort_values("insee").reset_index(drop=True)
    drawn = gpd.GeoDataFrame(drawn, geometry="geometry", crs=pa.communes.crs)
    in_scope = drawn["departement"].astype(str).isin(deps).to_numpy()

    names_a = p_names(pa).to_dict()
    names_b = p_names(pb).to_dict()
    # the changes of every commune drawn, including those of the CPTS drawn whole outside the
    # départements (the figures and counts are the départements' own)
    rates = area_rates(pa, "departement", mask=pa.scoped(deps))
    every = diff(snapshot(pa, "departement", rates), snapshot(pb, "departement", rates))
    change = {r["insee"]: r["change"] for r in every["communes"]}
    tol = auto_tolerance(len(drawn)) if simplify == "auto" else tolerance(simplify)
    geoms = simplified(drawn.geometry.to_numpy(), drawn["departement"].astype(str).to_numpy(),
                       drawn.crs, tol)
    geom_of = pd.Series(geoms, index=drawn["insee"].to_numpy())
    cc = gpd.GeoDataFrame(drawn.drop(columns="geometry"), geometry=geoms, crs=4326)
    codes = cc["insee"].astype(str)
    cc["change"] = [change.get(c, "") for c in codes]
    cc["before"] = [names_a.get(c, "") for c in codes]
    cc["after"] = [names_b.get(c, "") for c in codes]
    cc["in_scope"] = in_scope
    n_missing = int((shapely.is_missing(geoms) & in_scope).sum())

    records = {r["cpts_id"]: (r["change"], {k: v for k, v in r.items()
                                            if k not in ("cpts", "cpts_id", "change")})
               for r in comparison.result["cpts"]}
    # a dissolved CPTS is only in `before`; a renamed one is "changed" under its new id
    before_changes = {**records, **{v[1]["cpts_id_before"]: v for v in records.values()
                                    if "cpts_id_before" in v[1]}}
    before = _outlines(pa, ids[pa], geom_of, before_changes)
    after = _outlines(pb, ids[pb], geom_of, records)
    dep_rows = [{"departement": str(code), "geometry": union(grp.geometry.to_numpy())}
                for code, grp in cc[in_scope].groupby("departement", sort=True)]
    dep_frame = gpd.GeoDataFrame(pd.DataFrame(dep_rows, columns=["departement", "geometry"]),
                                 geometry="geometry", crs=4326)
    sources = [s for s in (pa.territory_source, pb.territory_source) if s]
    return ComparisonLayers(
        communes=cc, before=before, after=after, departements=dep_frame,
        areas=comparison.areas, cpts=comparison.cpts, attrs=dict(pb.attrs),
        territory_source=" → ".join(sources) if sources else None,
        n_missing_geometry=n_missing,
    )


def p_names(p: Prepared) -> pd.Series:
    """Names of the CPTS of each commune of prepared inputs ("; "-joined), by INSEE code."""
    ins = p.inside
    return ins.sort_values("cpts").groupby("insee")["cpts"].agg(
        lambda s: "; ".join(dict.fromkeys(s.astype(str))))
