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

from ..analysis.diagnostics import gap_zones, group_outlines, outline, territory_outlines
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


def place_labels(communes: pd.DataFrame, n: int, by: str | None = None) -> pd.DataFrame:
    """The ``n`` most populous communes of ``communes``, with a point inside each to name it.

    Paris, Lyon and Marseille split into arrondissements are named once, as the city (their
    arrondissements together). Columns ``nom``, ``population``, ``lon``, ``lat``; with ``by``
    (a column such as ``"departement"``), the ``n`` most populous of each of its values, that
    column first, its values in order.

    Examples
    --------
    >>> from cpts_geo import load_communes
    >>> place_labels(load_communes("42"), 3)["nom"].tolist()
    ['Saint-Étienne', 'Saint-Chamond', 'Roanne']
    >>> place_labels(load_communes(["42", "43"]), 1, by="departement")["nom"].tolist()
    ['Saint-Étienne', 'Le Puy-en-Velay']
    """
    columns = ([] if by is None else [by]) + ["nom", "population", "lon", "lat"]
    if len(communes) == 0 or "geometry" not in communes.columns or n <= 0:
        return pd.DataFrame(columns=columns)
    city = city_of_arrondissement()
    codes = communes["insee"].astype(str).to_numpy(dtype=object)
    geoms = communes.geometry.to_numpy()
    drawn = np.flatnonzero(~shapely.is_missing(geoms))
    nom = (communes["nom"].astype(str).to_numpy(dtype=object) if "nom" in communes.columns
           else codes)
    rows = pd.DataFrame({
        "group": (np.zeros(len(codes), dtype=object) if by is None
                  else communes[by].astype(str).to_numpy(dtype=object))[drawn],
        "key": np.array([city.get(c, c) for c in codes[drawn]], dtype=object),
        "nom": nom[drawn], "pos": drawn,
        "population": pd.to_numeric(communes["population"], errors="coerce").fillna(0)
        .to_numpy()[drawn]})
    grouped = rows.groupby(["group", "key"], sort=True)
    top = pd.DataFrame({"nom": grouped["nom"].first(), "population": grouped["population"].sum(),
                        "pos": grouped["pos"].first(), "count": grouped.size()}).reset_index()
    top = top.sort_values(["group", "population", "nom"], ascending=[True, False, True],
                          kind="stable")
    top = top.groupby("group", sort=False).head(n)
    shapes = geoms[top["pos"].to_numpy()]
    for i in np.flatnonzero(top["count"].to_numpy() > 1):  # a city drawn by arrondissement
        k = top["key"].iloc[i]
        members = rows.loc[(rows["key"] == k).to_numpy(), "pos"].to_numpy()
        shapes[i] = shapely.union_all(geoms[members])
    if communes.crs is not None and not gpd.GeoSeries(crs=communes.crs).crs.equals("EPSG:4326"):
        shapes = gpd.GeoSeries(shapes, crs=communes.crs).to_crs(4326).to_numpy()
    points = shapely.point_on_surface(shapes)
    many = top["count"].to_numpy() > 1
    out = pd.DataFrame({
        # a city drawn by arrondissement is named once, as the city
        "nom": [_ARRONDISSEMENT.sub("", str(v)) if m else str(v)
                for v, m in zip(top["nom"], many, strict=True)],
        "population": top["population"].to_numpy().astype(np.int64),
        "lon": [round(float(x), DECIMALS) for x in shapely.get_x(points)],
        "lat": [round(float(y), DECIMALS) for y in shapely.get_y(points)]},
        columns=columns[-4:])
    if by is not None:
        out.insert(0, by, top["group"].to_numpy())
    return out


def boundary_holes(p: Prepared, departements: Sequence[str] | None,
                   decimals: int = DECIMALS) -> gpd.GeoDataFrame | None:
    """The holes of the bundled boundaries bordering these départements (all: None).

    Only for communes from the bundle (the holes are its own); None for other sources. Read
    and rounded once for prepared inputs, then sliced for each map.
    """
    if p.attrs.get("source_kind") != "bundled":
        return None

    def every(_: Prepared) -> gpd.GeoDataFrame:
        from ..sources.bundle import load_holes

        holes = load_holes()
        holes = holes[holes.geometry.notna()].reset_index(drop=True)
        holes["geometry"] = shapely.set_precision(holes.geometry.to_numpy(),
                                                  10.0**-decimals, mode="pointwise")
        return holes[~shapely.is_empty(holes.geometry.to_numpy())].reset_index(drop=True)

    holes = p.memo(f"boundary_holes:{decimals}", every)
    if departements is None:
        return holes.copy()
    wanted = set(departements)
    near = [bool(wanted & set(str(ds).split(","))) for ds in holes["departements"]]
    return holes[np.asarray(near, dtype=bool)].reset_index(drop=True)


class _Drawing:
    """The geometries maps draw, made once for prepared inputs and kept.

    Without simplification every commune is drawn the same on every map (in EPSG:4326, rounded):
    the maps of a site's départements share their communes, the outlines of their CPTS, gap
    zones and départements. A simplified map draws its own (its communes are simplified
    together): give it a new drawing.
    """

    def __init__(self, p: Prepared, tolerance: float | None = None,
                 positions: np.ndarray | None = None):
        self.p = p
        self.tolerance = tolerance
        n = len(p.codes)
        self.geoms = np.full(n, None, dtype=object)
        self.done = np.zeros(n, dtype=bool)
        self.unions: dict[tuple[str, str], Any] = {}
        area_of, codes = p.areas("departement")
        self.deps = codes[area_of]
        if positions is not None:  # simplified together: all of them now
            self.at(positions)

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The drawn geometry of the communes at these positions."""
        todo = positions[~self.done[positions]]
        if len(todo):
            c = self.p.communes
            self.geoms[todo] = simplified(c.geometry.to_numpy()[todo], self.deps[todo], c.crs,
                                          self.tolerance)
            self.done[todo] = True
        return self.geoms[positions]

    def outlines(self, kind: str, keys: Sequence[str],
                 members: Any) -> list[Any]:
        """The union of the drawn communes of each key (``members(keys)``: their positions)."""
        todo = [k for k in dict.fromkeys(keys) if (kind, k) not in self.unions]
        if todo:
            lists = [np.asarray(x, dtype=np.intp) for x in members(todo)]
            flat = np.concatenate(lists) if lists else np.zeros(0, dtype=np.intp)
            group = np.repeat(np.arange(len(todo)), [len(x) for x in lists])
            shapes = group_outlines(self.at(flat), group, len(todo))
            self.unions.update(((kind, k), g) for k, g in zip(todo, shapes, strict=True))
        return [self.unions[(kind, k)] for k in keys]


def _inside_by_cpts(p: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``p.inside`` by CPTS number (membership order within), and their bounds."""
    order = np.argsort(p.inside_cpts, kind="stable")
    return order, np.searchsorted(p.inside_cpts[order], np.arange(len(p.cpts_codes[1]) + 1))


def _page_zones(zones: gpd.GeoDataFrame, drawn: Any) -> tuple[gpd.GeoDataFrame,
                                                               dict[str, np.ndarray]]:
    """Gap zones within départements, numbered within each, drawn; the rows of each."""
    zones = zones.reset_index(drop=True)
    deps = zones["departements"].astype(str)
    zones["zone"] = zones.groupby(deps, sort=False).cumcount().to_numpy() + 1
    return drawn(zones), {str(d): np.asarray(rows) for d, rows in
                          zones.groupby(deps, sort=False).indices.items()}


def build_layers(
    p: Prepared,
    departements: Sequence[str] | None = None,
    simplify: Simplify = "auto",
) -> Layers:
    """Everything a map of these départements draws (all of ``p.communes`` when None).

    The CPTS that straddle into other départements are drawn whole (their other communes must
    be in ``p.communes``); the coverage rate, gap zones and outlines are those of the
    départements asked for. Without simplification (``simplify=None``), what maps of the same
    inputs share is made once (the pages of a site).
    """
    communes = p.communes
    if not isinstance(communes, gpd.GeoDataFrame) or "geometry" not in communes.columns:
        raise InputError("`communes` has no geometry: maps need the boundaries of the communes")
    tol = tolerance(simplify)
    area_of, area_codes = p.areas("departement")
    if departements is None:
        in_scope = np.ones(len(communes), dtype=bool)
    else:
        in_scope = p.scoped(departements)
        absent = sorted(set(departements) - set(area_codes[np.unique(area_of[in_scope])]))
        if absent:
            raise InputError(
                f"`departements` asks for {absent} but `communes` has no commune there; load "
                f"them too, e.g. load_communes({absent!r})"
            )
    real = p.memo("without_proposals", without_proposals)  # rates, gaps: real CPTS only
    ins_pos = p.inside["pos"].to_numpy()
    ins_cpts = p.inside_cpts
    scope_k = np.unique(ins_cpts[in_scope[ins_pos]])
    drawn_pos = np.union1d(np.flatnonzero(in_scope), ins_pos[np.isin(ins_cpts, scope_k)])
    keep = np.zeros(len(communes), dtype=bool)
    keep[drawn_pos] = True
    scope = in_scope[keep]
    cc_all = p.memo("commune_figures", commune_figures)
    table = p.memo("cpts_figures", cpts_figures)  # a row per CPTS number, in order
    info = table.iloc[np.unique(ins_cpts[keep[ins_pos]])].reset_index(drop=True)
    page = departements[0] if departements is not None and len(departements) == 1 else None
    one = page is not None  # a département's page
    if one:  # its row of the national table (the same sums: its communes, in order)
        national_rates = real.memo("rates_departement", lambda q: area_rates(q, "departement"))
        rates = national_rates[national_rates["departement"] == page].reset_index(
            drop=True)
    else:
        rates = area_rates(real, "departement", mask=in_scope)
    if not one:
        gaps = gap_zones(real, mask=in_scope, geometry=False)
    proposed_population = float(
        area_rates(p, "departement", mask=in_scope)["covered_population"].sum()
        - rates["covered_population"].sum()) if real is not p else 0.0

    # geometry: the drawn communes (simplified as one coverage), everything built from them
    if simplify == "auto":
        tol = auto_tolerance(len(drawn_pos))
    drawing = (p.memo("drawing", _Drawing) if tol is None
               else _Drawing(p, tol, drawn_pos))
    geoms = drawing.at(drawn_pos)
    plain = p.memo("commune_figures:plain",
                   lambda _: pd.DataFrame(cc_all.drop(columns="geometry")))
    cc = gpd.GeoDataFrame(plain.iloc[drawn_pos].reset_index(drop=True), geometry=geoms, crs=4326)
    cc.attrs = dict(p.attrs)
    n_missing = int((shapely.is_missing(geoms) & scope).sum())
    position = p.position

    # CPTS drawn: outline of their drawn communes, colours by adjacency
    cpts = table.iloc[scope_k].reset_index(drop=True)
    order, bounds = p.memo("inside_by_cpts", _inside_by_cpts)

    def of_cpts(ks: list[int]) -> list[np.ndarray]:
        return [ins_pos[order[bounds[k]:bounds[k + 1]]] for k in ks]

    outlines = drawing.outlines("cpts", scope_k.tolist(), of_cpts)
    colours = colour_graph(outlines, list(cpts["cpts_id"]))
    cpts["colour_index"] = colours
    cpts["colour"] = [palette_colour(c) for c in colours]
    cpts["proposal"] = is_proposal(cpts["status"])
    cpts = gpd.GeoDataFrame(cpts, geometry=outlines, crs=4326)

    # gap zones: union of the zone's drawn communes
    def zone_outlines(zones: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        def of_zones(keys: list[str]) -> list[np.ndarray]:
            return [position.reindex(z.split(", ")).dropna().to_numpy(dtype=np.intp)
                    for z in keys]

        shapes = drawing.outlines("zone", [str(z) for z in zones["insee"]], of_zones)
        return gpd.GeoDataFrame(zones.drop(columns="geometry"), geometry=shapes, crs=4326)

    if one and tol is None:  # the département's zones, numbered within it, drawn once
        drawn_zones, rows_of = real.memo("gaps_by_departement:drawn", lambda q: _page_zones(
            q.memo("gaps_by_departement", lambda r: gap_zones(r, by_departement=True)),
            zone_outlines))
        gaps = drawn_zones.iloc[rows_of.get(page, [])].reset_index(drop=True)
    elif one:
        national = real.memo("gaps_by_departement", lambda q: gap_zones(q, by_departement=True))
        gaps = zone_outlines(national[national["departements"] == page].assign(
            zone=lambda z: np.arange(1, len(z) + 1)).reset_index(drop=True))
    elif len(gaps):
        gaps = zone_outlines(gaps)
    ov = cc["overlap"].to_numpy(dtype=bool)
    overlaps = plain.iloc[drawn_pos[ov]].reset_index(drop=True)
    overlaps = gpd.GeoDataFrame(overlaps, geometry=geoms[ov], crs=4326)
    overlaps["overlap_population"] = (
        pd.to_numeric(overlaps["population"], errors="coerce").fillna(0)
        * np.clip(overlaps["claimed_share"] - 1, 0, 1)
    )
    # département outlines
    names = dict(zip(rates["departement"], rates["nom"], strict=True))
    dep_codes = [str(d) for d in area_codes[np.unique(area_of[in_scope])]]
    dep_k = {d: k for k, d in enumerate(area_codes)}

    def of_departements(codes: list[str]) -> list[np.ndarray]:
        return [np.flatnonzero(in_scope & (area_of == dep_k[d])) for d in codes]

    deps = gpd.GeoDataFrame(
        pd.DataFrame({"departement": dep_codes,
                      "nom": [names.get(d, d) for d in dep_codes]},
                     columns=["departement", "nom"]),
        geometry=drawing.outlines("departement", dep_codes, of_departements)
        if dep_codes else [], crs=4326)
    if departements is not None and len(departements) == 1:
        every = p.memo("place_labels", lambda q: place_labels(
            q.communes, LABELS_DEPARTEMENT, by="departement"))
        labels = every[every["departement"] == page].drop(
            columns="departement").reset_index(drop=True)
    else:
        labels = place_labels(communes[in_scope], LABELS_DEPARTEMENT)
    return Layers(
        communes=cc, scope=scope, cpts=cpts, cpts_info=info, gaps=gaps, overlaps=overlaps,
        departements=deps, rates=rates, attrs=dict(p.attrs),
        territory_source=p.territory_source, n_missing_geometry=n_missing,
        filters=filters_text(p), n_proposals=int(cpts["proposal"].sum()),
        proposed_population=proposed_population, labels=labels,
        holes=boundary_holes(p, dep_codes),
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
        # Douglas-Peucker without topology first (several times faster); the outlines where it
        # lost a part (an islet) or crossed itself, again keeping their topology
        out = shapely.simplify(g, OVERVIEW_OUTLINE_TOLERANCE, preserve_topology=False)
        redo = ((shapely.get_num_geometries(out) != shapely.get_num_geometries(g))
                | ~shapely.is_valid(out))
        out[redo] = shapely.simplify(g[redo], OVERVIEW_OUTLINE_TOLERANCE,
                                     preserve_topology=True)
        return out

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
