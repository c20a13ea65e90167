"""Coverage maps: an interactive Leaflet map (folium) and the same picture as a static figure.

:func:`coverage_map` draws, as layers that can be switched on and off, the CPTS territories
(each its own colour, two neighbouring CPTS never the same; the style says the status), the gap
zones (communes covered by no CPTS), the overlaps (communes claimed by several CPTS), the commune
borders and the département outline, with tooltips and popups, a legend, a title giving the
coverage rate and the data vintage in the attribution. :func:`coverage_figure` draws the same
layers with matplotlib for reports.

Geometries are simplified as a *coverage* (``shapely.coverage_simplify``: neighbours keep the
same shared edges, so no gap or sliver opens between them) and rounded to 5 decimals (about a
metre); CPTS outlines, gap zones and département outlines are unions of the simplified communes,
so that all layers stay consistent.

Offline by default: the page embeds Leaflet (taken at run time from the ``django-js-lib-leaflet``
package, not copied into this repository) and loads nothing from the network unless background
``tiles`` are asked for. :func:`map_html` can instead point to one shared copy of Leaflet's files
written by :func:`write_assets` (for a static site).

Every text that comes from an input (CPTS and commune names, statuses, sources, titles) is
HTML-escaped before it reaches the page; the data embedded in ``<script>`` escapes ``<``, ``>``
and ``&`` so that a name such as ``</script>`` cannot end the script.
"""

from __future__ import annotations

import base64
import colorsys
import html
import json
import os
import re
import shutil
import textwrap
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from folium.template import Template

from ._io import atomic_path, write_text_atomic
from .coverage import (
    SIZE_CLASSES,
    _outline,
    _prepare,
    commune_coverage,
    coverage,
    find_gaps,
)
from .errors import InputError
from .reference import LOCAL_CRS, METRO_CRS

if TYPE_CHECKING:
    import matplotlib.axes
    import matplotlib.figure

__all__ = ["coverage_figure", "coverage_map", "map_html", "save_map", "write_assets"]

DateLike = date | datetime | str | None
Simplify = float | Literal["auto"] | None

# ---------------------------------------------------------------------------------------------
# Styles
# ---------------------------------------------------------------------------------------------
#: Qualitative palette for CPTS, most distinct hues first (greedy colouring rarely needs more
#: than five); no red, pink nor violet, which mark gaps and overlaps.
_PALETTE: tuple[str, ...] = (
    "#1f78b4",  # blue
    "#ff7f00",  # orange
    "#33a02c",  # green
    "#ffd92f",  # yellow
    "#17becf",  # cyan
    "#8c564b",  # brown
    "#7f7f7f",  # grey
    "#bcbd22",  # olive
    "#0b3d91",  # navy
    "#b2df8a",  # light green
)
_GAP_FILL, _GAP_LINE = "#e31a1c", "#99000d"
_OVERLAP_FILL, _OVERLAP_LINE = "#6a3d9a", "#3f007d"
_UNKNOWN_STATUS = "statut non renseigné"

#: Style of a CPTS by status: fill opacity, line weight, dash pattern (SVG ``stroke-dasharray``)
#: and a French description for the legend. The further the project, the more solid the fill.
_STATUS_STYLE: dict[str, tuple[float, float, str | None, str]] = {
    "ACI signé": (0.7, 2.5, None, "remplissage plein, contour continu"),
    "projet de santé validé": (0.5, 2.0, "8 4", "remplissage moyen, contour en tirets"),
    "lettre d'intention validée": (0.35, 2.0, "3 4", "remplissage clair, contour en pointillés"),
    "pré-projet": (0.2, 1.5, "1 5", "remplissage très clair, contour pointillé espacé"),
    _UNKNOWN_STATUS: (0.4, 1.5, "10 3 2 3", "contour en tirets-points"),
}
_STATUS_ORDER = (
    "ACI signé",
    "projet de santé validé",
    "lettre d'intention validée",
    "pré-projet",
    _UNKNOWN_STATUS,
)

_LAYER_CPTS = "Territoires CPTS"
_LAYER_GAPS = "Zones blanches (communes non couvertes)"
_LAYER_OVERLAPS = "Chevauchements entre CPTS"
_LAYER_COMMUNES = "Limites communales"
_LAYER_DEPARTEMENTS = "Limites départementales"

#: CRS in which each group of communes is simplified (metres); overseas départements are not
#: projected to Lambert-93.
_LOCAL_CRS = LOCAL_CRS
_METRO_CRS = METRO_CRS
_DECIMALS = 5  # about 1 m: a clean coverage stays clean (coverage_is_valid) at this precision
_MAX_LISTED_CPTS = 25
_MAX_LISTED_NAMES = 12

_LEAFLET_DIST = "django-js-lib-leaflet==1.9.4.1"
_FOLIUM_ASSET_NAMES = frozenset(name for name, _ in [*folium.Map.default_js,
                                                       *folium.Map.default_css])
_ASSET_KEY = "cpts_geo_leaflet"


# ---------------------------------------------------------------------------------------------
# Text helpers
# ---------------------------------------------------------------------------------------------
def _esc(value: object) -> str:
    """HTML-escape a value coming from an input (quotes too: it may land in an attribute)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


def _js(obj: Any) -> str:
    """Compact JSON that is safe inside a ``<script>`` element (``</script>``, ``<!--``)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _int_or_none(value: object) -> int | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value))  # type: ignore[arg-type]


def _fr_int(value: float | int | None) -> str:
    """``1271166`` -> ``"1 271 166"`` (narrow no-break spaces, as French typography wants)."""
    if value is None or pd.isna(value):
        return "n.d."
    return f"{round(float(value)):,}".replace(",", "\u202f")


def _fr_pct(rate: float | None) -> str:
    if rate is None or pd.isna(rate):
        return "n.d."
    return f"{100 * rate:.1f}".replace(".", ",") + "\u202f%"


def _size_label(cls: object) -> str:
    if cls is None or pd.isna(cls):
        return "n.d."
    for c, low, high in SIZE_CLASSES:
        if c == int(cls):  # type: ignore[call-overload]
            if low == 0:
                return f"taille {c} (< {_fr_int(high)} hab.)"
            if np.isinf(high):
                return f"taille {c} (> {_fr_int(low)} hab.)"
            return f"taille {c} ({_fr_int(low)} à {_fr_int(high)} hab.)"
    return f"taille {cls}"


# ---------------------------------------------------------------------------------------------
# Leaflet assets (from the django-js-lib-leaflet package, located without importing Django)
# ---------------------------------------------------------------------------------------------
def _leaflet_dir() -> Traversable:
    hint = f"install it with `pip install {_LEAFLET_DIST}` (a dependency of cpts-geo)"
    try:
        root = files("js_lib_leaflet")
    except ModuleNotFoundError as exc:
        raise ImportError(
            f"offline maps embed Leaflet from the package django-js-lib-leaflet: {hint}"
        ) from exc
    static = root / "static" / "js_lib_leaflet"
    if not (static / "leaflet.js").is_file() or not (static / "leaflet.css").is_file():
        raise ImportError(
            f"Leaflet's files are missing from the django-js-lib-leaflet package in {root}: "
            f"reinstall it ({hint})"
        )
    return static


def _leaflet_images() -> list[Traversable]:
    return sorted(
        (p for p in (_leaflet_dir() / "images").iterdir() if p.name.endswith(".png")),
        key=lambda p: p.name,
    )


def _data_uri(item: Traversable) -> str:
    return "data:image/png;base64," + base64.b64encode(item.read_bytes()).decode("ascii")


@lru_cache(maxsize=1)
def _inline_assets() -> str:
    """Leaflet's CSS (images as data URIs) and JS, ready to go in the page's ``<head>``."""
    static = _leaflet_dir()
    js = (static / "leaflet.js").read_text(encoding="utf-8")
    css = (static / "leaflet.css").read_text(encoding="utf-8")
    # the source map is not shipped inline; drop the reference so no file is looked for
    js = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", js)
    # an inline script or style ends at the first "</script" / "</style": make sure none occurs
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)
    css = re.sub(r"</(style)", r"<\\/\1", css, flags=re.IGNORECASE)
    uris = {p.name: _data_uri(p) for p in _leaflet_images()}
    css = re.sub(
        r"url\((['\"]?)images/([\w.-]+\.png)\1\)",
        lambda mo: f"url({uris[mo.group(2)]})" if mo.group(2) in uris else mo.group(0),
        css,
    )
    # markers (if a user adds some) take their icons from data URIs too
    icons = {
        "iconUrl": uris.get("marker-icon.png"),
        "iconRetinaUrl": uris.get("marker-icon-2x.png"),
        "shadowUrl": uris.get("marker-shadow.png"),
    }
    icon_js = (
        'L.Icon.Default.imagePath = "";\n'
        f"L.Icon.Default.mergeOptions({_js({k: v for k, v in icons.items() if v})});"
    )
    return (
        "<!-- Leaflet (BSD-2-Clause), embedded from the PyPI package "
        f"{_LEAFLET_DIST} by cpts_geo -->\n"
        f"<style>\n{css}\n</style>\n<script>\n{js}\n</script>\n<script>\n{icon_js}\n</script>"
    )


def _linked_assets(prefix: str) -> str:
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    p = _esc(prefix)
    return (
        f'<link rel="stylesheet" href="{p}leaflet.css"/>\n'
        f'<script src="{p}leaflet.js"></script>'
    )


class _LeafletAssets(Element):
    """Leaflet's JS and CSS, inlined or linked from a local prefix."""

    def __init__(self, assets: str):
        super().__init__()
        self._name = "LeafletAssets"
        self.assets = assets

    def render(self, **kwargs: Any) -> str:
        if self.assets == "inline":
            return _inline_assets()
        return _linked_assets(self.assets)


def _install_assets(m: folium.Map, assets: str) -> None:
    """Make the next render of ``m`` use ``assets``: "cdn" (folium's), "inline" or a prefix."""
    figure = m.get_root()
    if not isinstance(figure, Figure):  # pragma: no cover - folium always gives a Figure
        return
    header = figure.header
    children = OrderedDict(
        (k, v) for k, v in header._children.items()
        if k not in _FOLIUM_ASSET_NAMES and k != _ASSET_KEY
    )
    if assets == "cdn":
        m.default_js = list(folium.Map.default_js)
        m.default_css = list(folium.Map.default_css)
        header._children = children
        return
    m.default_js = []
    m.default_css = []
    ordered: OrderedDict[str, Element] = OrderedDict()
    if "meta_http" in children:
        ordered["meta_http"] = children.pop("meta_http")
    leaflet = _LeafletAssets(assets)
    leaflet._parent = header
    ordered[_ASSET_KEY] = leaflet
    ordered.update(children)
    header._children = ordered


class _CoverageMap(folium.Map):
    """A folium Map whose Leaflet assets are inline (offline) or folium's CDN links.

    The choice applies to every render: ``save``, ``_repr_html_`` (Jupyter) and
    ``get_root().render()``.
    """

    def __init__(self, *, assets: str = "inline", **kwargs: Any):
        super().__init__(**kwargs)
        self._cpts_geo_assets = assets

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]
        _install_assets(self, self._cpts_geo_assets)
        super().render(**kwargs)


# ---------------------------------------------------------------------------------------------
# Geometry: one consistent, simplified picture
# ---------------------------------------------------------------------------------------------
def _auto_tolerance(n_communes: int) -> float:
    """Visvalingam-Whyatt tolerance (metres, about the square root of the area removed)."""
    if n_communes <= 2_000:
        return 250.0
    if n_communes <= 10_000:
        return 500.0
    return 1_000.0


def _simplified(
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
    out[present] = shapely.set_precision(out[present], 10.0**-_DECIMALS, mode="pointwise")
    return out


def _union(geoms: Iterable[Any]) -> Any:
    arr = np.array(list(geoms), dtype=object)
    if len(arr) == 0:
        return None
    arr = arr[~(shapely.is_missing(arr) | shapely.is_empty(arr))]
    return _outline(arr) if len(arr) else None


def _colour_graph(geoms: Sequence[Any], keys: Sequence[str]) -> list[int]:
    """Greedy colouring (largest degree first) of the "intersects" graph of ``geoms``.

    Two CPTS whose outlines touch, even at a point, or share a commune, get different colours.
    Among the colours its neighbours leave free, a CPTS takes the least used one within the
    palette, so that every CPTS has its own colour as long as the palette allows.
    """
    n = len(geoms)
    arr = np.array(list(geoms), dtype=object)
    neighbours: list[set[int]] = [set() for _ in range(n)]
    if n:
        usable = arr.copy()
        usable[shapely.is_missing(arr) | shapely.is_empty(arr)] = None
        tree = shapely.STRtree(usable)
        left, right = tree.query(usable, predicate="intersects")
        for a, b in zip(left.tolist(), right.tolist(), strict=True):
            if a != b:
                neighbours[a].add(b)
                neighbours[b].add(a)
    order = sorted(range(n), key=lambda i: (-len(neighbours[i]), keys[i]))
    colour = [-1] * n
    uses: dict[int, int] = {}
    for i in order:
        used = {colour[j] for j in neighbours[i]}
        free = [c for c in range(len(_PALETTE)) if c not in used]
        if free:
            c = min(free, key=lambda k: (uses.get(k, 0), k))
        else:  # more neighbours than colours: go past the palette (still distinct)
            c = len(_PALETTE)
            while c in used:
                c += 1
        colour[i] = c
        uses[c] = uses.get(c, 0) + 1
    return colour


def _palette_colour(index: int) -> str:
    if index < len(_PALETTE):
        return _PALETTE[index]
    # more colours than the palette (never seen on real maps): spread hues by the golden angle,
    # avoiding the reds and violets of gaps and overlaps
    hue = 0.08 + ((index - len(_PALETTE)) * 0.381966) % 0.6  # between orange and blue
    r, g, b = colorsys.hls_to_rgb(hue, 0.5, 0.55)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _darker(hex_colour: str, factor: float = 0.65) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"#{round(r * factor):02x}{round(g * factor):02x}{round(b * factor):02x}"


@dataclass
class _Layers:
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


def _departement_codes(departement: str | Sequence[str] | None) -> list[str] | None:
    if departement is None:
        return None
    from .reference import normalize_departement

    codes = [departement] if isinstance(departement, str | int) else list(departement)
    if not codes:
        raise InputError("`departement` was an empty sequence; give codes such as '42' or None")
    return sorted({normalize_departement(c) for c in codes})


def _filters_text(as_of: DateLike, statuses: Iterable[str] | None) -> str:
    parts = []
    if as_of is not None:
        parts.append(f"CPTS au {pd.Timestamp(as_of).date().isoformat()}")
    if statuses is not None:
        items = [statuses] if isinstance(statuses, str) else list(statuses)
        parts.append("statuts : " + ", ".join(str(s) for s in items))
    return " ; ".join(parts)


def _tolerance(simplify: Simplify) -> float | None:
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


def _build(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    departement: str | Sequence[str] | None,
    as_of: DateLike,
    statuses: Iterable[str] | None,
    simplify: Simplify,
) -> _Layers:
    if not isinstance(communes, gpd.GeoDataFrame):
        raise InputError(
            f"`communes` was a {type(communes).__name__}; expected the GeoDataFrame of "
            "cpts_geo.load_communes()"
        )
    _tolerance(simplify)  # fail early on a bad value
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers = _build_layers(communes, territories, departement, as_of, statuses, simplify)
    seen = set()
    for w in caught:  # re-emitted so that they point at the caller's line, once each
        if str(w.message) not in seen:
            seen.add(str(w.message))
            warnings.warn(w.message, w.category, stacklevel=3)
    return layers


def _build_layers(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    departement: str | Sequence[str] | None,
    as_of: DateLike,
    statuses: Iterable[str] | None,
    simplify: Simplify,
) -> _Layers:
    needed = ("insee", "population", "departement", "geometry")
    communes_h, m = _prepare(communes, territories, as_of, statuses, needed)
    attrs = dict(communes.attrs)
    deps = _departement_codes(departement)
    dep_col = communes_h["departement"].astype(str).to_numpy()
    if deps is None:
        in_scope = np.ones(len(communes_h), dtype=bool)
    else:
        in_scope = pd.Series(dep_col).isin(deps).to_numpy()
        absent = sorted(set(deps) - set(dep_col[in_scope]))
        if absent:
            raise InputError(
                f"`departement` asks for {absent} but `communes` has no commune there; load "
                f"them too, e.g. load_communes({absent!r})"
            )
    codes = communes_h["insee"].to_numpy()
    scope_codes = set(codes[in_scope])
    drawn_ids = set(m.loc[m["insee"].isin(scope_codes), "cpts_id"])
    m_drawn = m[m["cpts_id"].isin(drawn_ids)]
    keep = in_scope | pd.Series(codes).isin(set(m_drawn["insee"])).to_numpy()
    drawn = communes_h[keep].reset_index(drop=True)
    scope = in_scope[keep]

    # coverage figures (unsimplified, exact)
    cc = commune_coverage(drawn, m)
    if not np.array_equal(cc["insee"].to_numpy(), drawn["insee"].to_numpy()):
        cc = cc.set_index("insee", drop=False).reindex(drawn["insee"]).reset_index(drop=True)
    info_ids = set(m.loc[m["insee"].isin(set(drawn["insee"])), "cpts_id"])
    m_info = m[m["cpts_id"].isin(info_ids)]
    table = coverage(communes_h, m_info, by="cpts") if len(m_info) else None
    if table is None or table.empty:
        table = pd.DataFrame(columns=["cpts", "cpts_id", "status", "population", "n_communes",
                                      "departements", "size_class"])
    table = table.reset_index(drop=True)
    rates = coverage(drawn[scope], m, by="departement")
    gaps = find_gaps(drawn[scope], m)

    # geometry: simplify the drawn communes as one coverage, rebuild everything from them
    tolerance = _auto_tolerance(len(drawn)) if simplify == "auto" else _tolerance(simplify)
    geoms = _simplified(drawn.geometry.to_numpy(), drawn["departement"].astype(str).to_numpy(),
                        drawn.crs, tolerance)
    geom_of = pd.Series(geoms, index=drawn["insee"].to_numpy())
    cc = gpd.GeoDataFrame(cc.drop(columns="geometry"),
                          geometry=geom_of.reindex(cc["insee"]).to_numpy(), crs=4326)
    cc.attrs = attrs
    n_missing = int((shapely.is_missing(geoms) & scope).sum())

    # CPTS drawn: outline of their drawn communes, colours by adjacency
    cpts = table[table["cpts_id"].isin(drawn_ids)].reset_index(drop=True)
    members = m_drawn.groupby("cpts_id")["insee"].agg(list)
    outlines = [
        _union(geom_of.reindex(members.get(cid, [])).dropna().to_numpy())
        for cid in cpts["cpts_id"]
    ]
    cpts = gpd.GeoDataFrame(cpts, geometry=outlines, crs=4326)
    colours = _colour_graph(outlines, list(cpts["cpts_id"]))
    cpts["colour_index"] = colours
    cpts["colour"] = [_palette_colour(c) for c in colours]

    # gap zones: union of the zone's simplified communes
    if len(gaps):
        zone_geoms = [
            _union(geom_of.reindex(str(s).split(", ")).dropna().to_numpy())
            for s in gaps["insee"]
        ]
        gaps = gpd.GeoDataFrame(gaps.drop(columns="geometry"), geometry=zone_geoms, crs=4326)
    overlaps = cc[cc["overlap"].to_numpy()].copy()
    overlaps["overlap_population"] = (
        pd.to_numeric(overlaps["population"], errors="coerce").fillna(0)
        * np.clip(overlaps["claimed_share"] - 1, 0, 1)
    )
    # département outlines
    dep_rows = []
    names = dict(zip(rates["departement"], rates["nom"], strict=True))
    scoped = cc[scope]
    for code, grp in scoped.groupby("departement", sort=True):
        dep_rows.append({"departement": str(code), "nom": names.get(str(code), str(code)),
                         "geometry": _union(grp.geometry.to_numpy())})
    departements = gpd.GeoDataFrame(
        pd.DataFrame(dep_rows, columns=["departement", "nom", "geometry"]),
        geometry="geometry", crs=4326,
    )
    info = table.copy()
    return _Layers(
        communes=cc,
        scope=scope,
        cpts=cpts,
        cpts_info=info,
        gaps=gaps,
        overlaps=overlaps,
        departements=departements,
        rates=rates,
        attrs=attrs,
        territory_source=territories.attrs.get("source") if hasattr(territories, "attrs")
        else None,
        n_missing_geometry=n_missing,
        filters=_filters_text(as_of, statuses),
    )


# ---------------------------------------------------------------------------------------------
# Texts: title, legend, attribution
# ---------------------------------------------------------------------------------------------
def _area_label(rates: pd.DataFrame) -> str:
    n = len(rates)
    if n >= 96:
        return "France"
    if n > 3:
        return f"{n} départements"
    return ", ".join(f"{nom} ({code})" for code, nom in zip(rates["departement"], rates["nom"],
                                                             strict=True))


def _summary(layers: _Layers) -> dict[str, Any]:
    pop = float(layers.rates["population"].sum())
    covered = float(layers.rates["covered_population"].sum())
    return {
        "population": pop,
        "covered": covered,
        "rate": covered / pop if pop > 0 else None,
        "area": _area_label(layers.rates),
    }


def _title_texts(layers: _Layers, title: str | None) -> tuple[str, str]:
    """Return the main title and the subtitle, as plain text (escape them for HTML)."""
    s = _summary(layers)
    main = title if title is not None else f"Couverture CPTS — {s['area']}"
    year = layers.attrs.get("population_year")
    sub = (
        f"{_fr_pct(s['rate'])} de la population couverte par une CPTS "
        f"({_fr_int(s['covered'])} / {_fr_int(s['population'])} hab."
        + (f", populations légales {year}" if year else "")
        + ")"
    )
    if layers.filters:
        sub += f" — {layers.filters}"
    return main, sub


def _vintage_text(layers: _Layers) -> str:
    a = layers.attrs
    parts = []
    if a.get("source"):
        parts.append(f"Communes : {a['source']}")
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


def _vintage_short(layers: _Layers) -> str:
    a = layers.attrs
    parts = []
    if a.get("cog_year"):
        parts.append(f"COG {a['cog_year']}")
    if a.get("population_year"):
        parts.append(f"populations légales {a['population_year']}")
    return "Données : " + (", ".join(parts) if parts else "millésime non précisé")


def _plural(n: int, word: str) -> str:
    return f"{_fr_int(n)} {word}{'s' if n > 1 else ''}"


def _swatch(fill: str | None, line: str, opacity: float, weight: float,
            dash: str | None) -> str:
    fill_attr = (f'fill="{fill}" fill-opacity="{opacity}"' if fill else 'fill="none"')
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        '<svg class="cpts-geo-swatch" width="30" height="16" aria-hidden="true">'
        f'<rect x="1.5" y="1.5" width="27" height="13" {fill_attr} stroke="{line}" '
        f'stroke-width="{min(weight, 2.5)}"{dash_attr}/></svg>'
    )


def _status_of(value: object) -> str:
    if value is None or pd.isna(value):
        return _UNKNOWN_STATUS
    return str(value) if str(value) in _STATUS_STYLE else _UNKNOWN_STATUS


def _legend_html(layers: _Layers) -> str:
    rows: list[str] = []
    cpts = layers.cpts
    rows.append(f'<div class="cpts-geo-sec">{_esc(_LAYER_CPTS)} ({len(cpts)})</div>')
    if len(cpts) == 0:
        rows.append("<div>aucune CPTS sur ce territoire</div>")
    elif len(cpts) <= _MAX_LISTED_CPTS:
        for _, r in cpts.sort_values("cpts").iterrows():
            fo, w, dash, _desc = _STATUS_STYLE[_status_of(r["status"])]
            rows.append(
                f"<div>{_swatch(r['colour'], _darker(r['colour']), fo, w, dash)} "
                f"{_esc(r['cpts'])} <small>({_esc(_status_of(r['status']))})</small></div>"
            )
    rows.append("<div><small>Deux CPTS voisines n'ont jamais la même couleur.</small></div>")
    rows.append('<div class="cpts-geo-sec">Statut (style du territoire)</div>')
    present = {_status_of(s) for s in cpts["status"]} if len(cpts) else set()
    for status in _STATUS_ORDER:
        if status == _UNKNOWN_STATUS and status not in present:
            continue
        fo, w, dash, desc = _STATUS_STYLE[status]
        rows.append(
            f"<div>{_swatch('#1f78b4', '#14507a', fo, w, dash)} {_esc(status)} "
            f"<small>: {_esc(desc)}</small></div>"
        )
    gaps = layers.gaps
    n_gap = int(gaps["n_communes"].sum()) if len(gaps) else 0
    gap_pop = float(pd.to_numeric(gaps["population"], errors="coerce").sum()) if len(gaps) else 0
    rows.append('<div class="cpts-geo-sec">Diagnostic</div>')
    rows.append(
        f"<div>{_swatch(_GAP_FILL, _GAP_LINE, 0.45, 2, None)} <b>Zone blanche</b> : commune "
        f"couverte par aucune CPTS <small>({_plural(n_gap, 'commune')}, "
        f"{_fr_int(gap_pop)} hab., {_plural(len(gaps), 'zone')})</small></div>"
    )
    rows.append(
        f"<div>{_swatch(_OVERLAP_FILL, _OVERLAP_LINE, 0.45, 2, '2 2')} <b>Chevauchement</b> : "
        f"commune revendiquée par plusieurs CPTS <small>("
        f"{_plural(len(layers.overlaps), 'commune')})</small></div>"
    )
    rows.append(f"<div>{_swatch(None, '#555555', 0, 1, None)} {_esc(_LAYER_COMMUNES)}</div>")
    rows.append(f"<div>{_swatch(None, '#000000', 0, 2.5, None)} "
                f"{_esc(_LAYER_DEPARTEMENTS)}</div>")
    if layers.n_missing_geometry:
        rows.append(
            f"<div><small>{layers.n_missing_geometry} commune(s) sans contour dans les données "
            "de référence, non dessinée(s) mais comptée(s).</small></div>"
        )
    rows.append(f'<div class="cpts-geo-source"><small>{_esc(_vintage_short(layers))} '
                "(sources : voir l'attribution)</small></div>")
    return (
        '<details class="cpts-geo-legend" open><summary>Légende</summary>'
        + "".join(rows)
        + "</details>"
    )


_CSS = """
.cpts-geo-title { position: absolute; top: 10px; left: 56px; z-index: 1000;
  background: rgba(255,255,255,0.92); padding: 6px 14px; border-radius: 5px;
  box-shadow: 0 1px 5px rgba(0,0,0,0.4); font: 14px/1.3 system-ui, sans-serif;
  max-width: calc(100% - 420px); min-width: 200px; pointer-events: none; }
.leaflet-control-attribution { font-size: 10px !important; max-width: 70%; }
.cpts-geo-title .cpts-geo-main { font-size: 17px; font-weight: 600; }
.cpts-geo-legend { position: absolute; bottom: 24px; left: 10px; z-index: 1000;
  background: rgba(255,255,255,0.94); padding: 6px 10px; border-radius: 5px;
  box-shadow: 0 1px 5px rgba(0,0,0,0.4); font: 12px/1.35 system-ui, sans-serif;
  max-height: 60%; max-width: 360px; overflow: auto; }
.cpts-geo-legend summary { font-weight: 600; cursor: pointer; }
.cpts-geo-legend .cpts-geo-sec { font-weight: 600; margin-top: 6px; }
.cpts-geo-legend .cpts-geo-swatch { vertical-align: middle; }
.cpts-geo-legend .cpts-geo-source { margin-top: 6px; color: #444; }
.cpts-geo-tip table { border-collapse: collapse; margin-top: 2px; }
.cpts-geo-tip th { text-align: left; font-weight: normal; color: #555; padding: 0 8px 0 0; }
.cpts-geo-tip td { padding: 0; }
.cpts-geo-tip .cpts-geo-sub { margin-top: 4px; font-weight: 600; }
"""


class _Overlay(MacroElement):
    """Title, legend and their CSS, drawn over the map (plain HTML, no script)."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}<style>{{ this.css }}</style>{% endmacro %}
        {% macro html(this, kwargs) %}
        <div class="cpts-geo-title" role="heading" aria-level="1">
          <div class="cpts-geo-main">{{ this.main }}</div>
          <div class="cpts-geo-subtitle">{{ this.sub }}</div>
        </div>
        {{ this.legend }}
        {% endmacro %}
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.attribution }});
        {% endmacro %}
        """
    )

    def __init__(self, main: str, sub: str, legend: str, attribution: str):
        super().__init__()
        self._name = "CptsGeoOverlay"
        self.css = _CSS
        self.main = _esc(main)
        self.sub = _esc(sub)
        self.legend = legend  # already built from escaped parts
        self.attribution = _js(_esc(attribution))


# ---------------------------------------------------------------------------------------------
# GeoJSON layers with safe tooltips
# ---------------------------------------------------------------------------------------------
_HELPERS_JS = """
var {{ this.get_name() }} = {
  cpts: {{ this.cpts_js }},
  n: function (v) {
    return (v === null || v === undefined) ? "n.d." : Number(v).toLocaleString("fr-FR");
  },
  pct: function (v) {
    return (v === null || v === undefined) ? "n.d."
      : (100 * v).toLocaleString("fr-FR", {maximumFractionDigits: 0}) + " %";
  },
  // every string that reaches these functions was HTML-escaped in Python
  table: function (title, rows) {
    var h = '<div class="cpts-geo-tip"><b>' + title + "</b><table>";
    for (var i = 0; i < rows.length; i++) {
      h += "<tr><th>" + rows[i][0] + "</th><td>" + rows[i][1] + "</td></tr>";
    }
    return h + "</table></div>";
  },
  cptsRows: function (i) {
    var c = this.cpts[i];
    return [["Statut", c.statut], ["Population", this.n(c.pop) + " hab."],
            ["Communes", this.n(c.n)], ["Taille ACI", c.taille],
            ["Départements", c.deps]];
  },
  names: function (k) {
    if (!k || k.length === 0) { return "aucune (zone blanche)"; }
    var self = this;
    return k.map(function (i) { return self.cpts[i].nom; }).join(" ; ");
  },
  cptsDetails: function (k) {
    var h = "", self = this;
    (k || []).forEach(function (i) {
      h += '<div class="cpts-geo-sub">CPTS ' + self.cpts[i].nom + "</div>"
        + self.table("", self.cptsRows(i));
    });
    return h;
  }
};
"""


class _MetricScale(MacroElement):
    """A scale bar in kilometres only."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "L.control.scale({imperial: false}).addTo({{ this._parent.get_name() }});"
        "{% endmacro %}"
    )


class _Helpers(MacroElement):
    """Per-map JS helpers and the table of CPTS that tooltips refer to by index."""

    _template = Template("{% macro script(this, kwargs) %}" + _HELPERS_JS + "{% endmacro %}")

    def __init__(self, cpts: list[dict[str, Any]]):
        super().__init__()
        self._name = "CptsGeoHelpers"
        self.cpts_js = _js(cpts)


class _GeoJsonLayer(MacroElement):
    """A GeoJSON layer embedded as compact, script-safe JSON.

    Its tooltips and popups are built by JS functions from properties that were HTML-escaped in
    Python.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson({{ this.data_js }}, {
            pane: {{ this.pane|tojson }},
            interactive: {{ this.interactive|tojson }},
            style: {{ this.style_js }}
            {%- if this.interactive %},
            onEachFeature: function (feature, layer) {
                var H = {{ this.helpers }};
                layer.bindTooltip(function (l) {
                    return ({{ this.tooltip_js }})(l.feature.properties, H);
                }, {sticky: true});
                layer.bindPopup(function (l) {
                    return ({{ this.popup_js }})(l.feature.properties, H);
                }, {maxWidth: 380});
            }
            {%- endif %}
        }).addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        properties: list[dict[str, Any]],
        geometries: Sequence[Any],
        *,
        pane: str,
        style: dict[str, Any] | None,
        helpers: _Helpers,
        tooltip_js: str | None = None,
        popup_js: str | None = None,
    ):
        super().__init__()
        self._name = "CptsGeoJson"
        self.properties = properties
        features = []
        for props, geom in zip(properties, geometries, strict=True):
            if geom is None or shapely.is_empty(geom):
                continue
            if shapely.get_type_id(geom) == 6 and shapely.get_num_geometries(geom) == 1:
                geom = shapely.get_geometry(geom, 0)  # a Polygon is shorter to write
            features.append(
                '{"type":"Feature","properties":' + _js(props)
                + ',"geometry":' + shapely.to_geojson(geom) + "}"
            )
        self.n_features = len(features)
        self.data_js = '{"type":"FeatureCollection","features":[' + ",".join(features) + "]}"
        self.pane = pane
        self.style_js = ("function (f) { return f.properties.style; }" if style is None
                         else _js(style))
        self.interactive = tooltip_js is not None
        self.tooltip_js = tooltip_js
        self.popup_js = popup_js or tooltip_js
        self.helpers = helpers.get_name()


_CPTS_TIP = "function (p, H) { return H.table(H.cpts[p.i].nom, H.cptsRows(p.i)); }"
_COMMUNE_TIP = """function (p, H) {
    return H.table(p.nom + " (" + p.insee + ")",
                   [["Population", H.n(p.pop) + " hab."], ["CPTS", H.names(p.k)]]);
}"""
_COMMUNE_POPUP = """function (p, H) {
    var dep = p.insee.slice(0, p.insee.slice(0, 2) === "97" ? 3 : 2);
    return H.table(p.nom, [["Code INSEE", p.insee], ["Département", dep],
                           ["Population", H.n(p.pop) + " hab."], ["CPTS", H.names(p.k)]])
        + H.cptsDetails(p.k);
}"""
_GAP_TIP = """function (p, H) {
    return H.table("Zone blanche n° " + p.zone,
                   [["Communes", H.n(p.n)], ["Population", H.n(p.pop) + " hab."]]);
}"""
_GAP_POPUP = """function (p, H) {
    return H.table("Zone blanche n° " + p.zone,
                   [["Communes", H.n(p.n)], ["Population", H.n(p.pop) + " hab."],
                    ["Noms", p.noms], ["CPTS voisines", p.voisines || "aucune"],
                    ["Enclave", p.enclave ? "oui, dans " + p.enclave : "non"]]);
}"""
_OVERLAP_TIP = """function (p, H) {
    return H.table("Chevauchement : " + p.nom + " (" + p.insee + ")",
                   [["CPTS", H.names(p.k)], ["Parts revendiquées", H.pct(p.share)],
                    ["Population comptée deux fois", H.n(p.ovpop) + " hab."]]);
}"""


def _cpts_records(layers: _Layers) -> tuple[list[dict[str, Any]], dict[str, int]]:
    info = layers.cpts_info
    index = {cid: i for i, cid in enumerate(info["cpts_id"])}
    records = [
        {
            "nom": _esc(r["cpts"]),
            "statut": _esc(_status_of(r["status"])),
            "pop": _int_or_none(r["population"]),
            "n": _int_or_none(r["n_communes"]),
            "taille": _esc(_size_label(r["size_class"])),
            "deps": _esc(r["departements"]),
        }
        for _, r in info.iterrows()
    ]
    return records, index


def _k(cpts_ids: object, index: dict[str, int]) -> list[int]:
    if not isinstance(cpts_ids, str) or not cpts_ids:
        return []
    return [index[c] for c in cpts_ids.split("; ") if c in index]


def _add_layers(m: folium.Map, layers: _Layers) -> None:
    records, index = _cpts_records(layers)
    helpers = _Helpers(records)
    m.add_child(helpers)
    panes = [("cpts_geo_cpts", 410, True), ("cpts_geo_gaps", 420, True),
             ("cpts_geo_overlaps", 430, True), ("cpts_geo_communes", 440, True),
             ("cpts_geo_departements", 450, False)]
    for name, z, events in panes:
        m.add_child(folium.map.CustomPane(name, z_index=z, pointer_events=events))

    # CPTS territories
    cpts = layers.cpts
    props = []
    thin = len(layers.communes) > 3_000  # national or regional map: lighter lines
    for _, r in cpts.iterrows():
        fo, w, dash, _desc = _STATUS_STYLE[_status_of(r["status"])]
        style = {"color": _darker(r["colour"]), "weight": w / 2 if thin else w,
                 "fillColor": r["colour"],
                 "fillOpacity": fo, "opacity": 0.95}
        if dash:
            style["dashArray"] = dash
        props.append({"i": index[r["cpts_id"]], "style": style})
    group = folium.FeatureGroup(name=_LAYER_CPTS, show=True)
    group.add_child(_GeoJsonLayer(props, list(cpts.geometry), pane="cpts_geo_cpts", style=None,
                                  helpers=helpers, tooltip_js=_CPTS_TIP))
    m.add_child(group)

    # gap zones
    gaps = layers.gaps
    cc = layers.communes
    name_of = dict(zip(cc["insee"], cc["nom"] if "nom" in cc.columns else cc["insee"],
                       strict=True))
    props = []
    for _, r in gaps.iterrows():
        codes = str(r["insee"]).split(", ")
        names = [str(name_of.get(c, c)) for c in codes]
        listed = ", ".join(names[:_MAX_LISTED_NAMES])
        if len(names) > _MAX_LISTED_NAMES:
            listed += f" … et {len(names) - _MAX_LISTED_NAMES} autres"
        props.append({
            "zone": int(r["zone"]), "n": int(r["n_communes"]),
            "pop": _int_or_none(r["population"]), "noms": _esc(listed),
            "voisines": _esc(r["neighbour_cpts"]),
            "enclave": _esc(r["enclosed_by"]) if bool(r["enclave"]) else "",
        })
    group = folium.FeatureGroup(name=_LAYER_GAPS, show=True)
    group.add_child(_GeoJsonLayer(
        props, list(gaps.geometry) if len(gaps) else [], pane="cpts_geo_gaps",
        style={"color": _GAP_LINE, "weight": 2, "fillColor": _GAP_FILL, "fillOpacity": 0.4,
               "opacity": 0.9},
        helpers=helpers, tooltip_js=_GAP_TIP, popup_js=_GAP_POPUP))
    m.add_child(group)

    # overlaps
    ov = layers.overlaps
    props = [
        {"nom": _esc(r.get("nom", r["insee"])), "insee": _esc(r["insee"]),
         "k": _k(r["cpts_ids"], index), "share": float(r["claimed_share"]),
         "ovpop": _int_or_none(r["overlap_population"])}
        for _, r in ov.iterrows()
    ]
    group = folium.FeatureGroup(name=_LAYER_OVERLAPS, show=True)
    group.add_child(_GeoJsonLayer(
        props, list(ov.geometry), pane="cpts_geo_overlaps",
        style={"color": _OVERLAP_LINE, "weight": 2, "dashArray": "2 3",
               "fillColor": _OVERLAP_FILL, "fillOpacity": 0.45},
        helpers=helpers, tooltip_js=_OVERLAP_TIP))
    m.add_child(group)

    # communes
    noms = cc["nom"] if "nom" in cc.columns else cc["insee"]
    props = [
        {"nom": _esc(nom), "insee": _esc(code), "pop": _int_or_none(pop), "k": _k(ids, index)}
        for nom, code, pop, ids in zip(noms, cc["insee"], cc["population"], cc["cpts_ids"],
                                       strict=True)
    ]
    group = folium.FeatureGroup(name=_LAYER_COMMUNES, show=True)
    group.add_child(_GeoJsonLayer(
        props, list(cc.geometry), pane="cpts_geo_communes",
        style={"color": "#555555", "weight": 0.3 if thin else 0.6, "opacity": 0.7, "fill": True,
               "fillOpacity": 0.0},
        helpers=helpers, tooltip_js=_COMMUNE_TIP, popup_js=_COMMUNE_POPUP))
    m.add_child(group)

    # département outlines (not interactive: they never hide the communes' tooltips)
    deps = layers.departements
    group = folium.FeatureGroup(name=_LAYER_DEPARTEMENTS, show=True)
    group.add_child(_GeoJsonLayer(
        [{"nom": _esc(n), "dep": _esc(c)} for n, c in zip(deps["nom"], deps["departement"],
                                                         strict=True)],
        list(deps.geometry), pane="cpts_geo_departements",
        style={"color": "#000000", "weight": 2.5 if len(deps) <= 5 else 1.2, "opacity": 0.9,
               "fill": False},
        helpers=helpers))
    m.add_child(group)


def _bounds(layers: _Layers) -> list[list[float]] | None:
    """Bounds to open the map on.

    Metropolitan France when it is drawn (overseas départements stay reachable by panning), else
    everything drawn.
    """
    cc = layers.communes
    geoms = cc.geometry.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    metro = ok & cc["departement"].astype(str).map(_LOCAL_CRS).isna().to_numpy()
    chosen = geoms[metro] if metro.any() else geoms[ok]
    if len(chosen) == 0:
        return None
    xmin, ymin, xmax, ymax = shapely.total_bounds(chosen)
    return [[float(ymin), float(xmin)], [float(ymax), float(xmax)]]


def _tile_layer(tiles: str) -> folium.TileLayer:
    if re.match(r"^(https?:)?//|^/|\{z\}", tiles):
        host = re.sub(r"^(https?:)?//", "", tiles).split("/")[0] or "serveur local"
        return folium.TileLayer(tiles=tiles, attr=f"Fond de carte : {_esc(host)}",
                                name="Fond de carte", overlay=False, control=True)
    return folium.TileLayer(tiles=tiles, name="Fond de carte", overlay=False, control=True)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def coverage_map(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    departement: str | Sequence[str] | None = None,
    title: str | None = None,
    offline: bool = True,
    tiles: str | None = None,
    simplify: Simplify = "auto",
    as_of: DateLike = None,
    statuses: Iterable[str] | None = None,
) -> folium.Map:
    """Interactive map of the CPTS coverage of a territory.

    Layers (switchable in the layer control): CPTS territories (one colour each, neighbours
    never the same colour; fill and outline say the status), gap zones (communes covered by no
    CPTS), overlaps, commune borders and département outlines. Hovering shows a tooltip,
    clicking a popup (CPTS name, status, population, number of communes, ACI size class;
    commune name, INSEE code, population and CPTS). The title gives the coverage rate of the
    population of the départements shown; the legend explains the styles; the attribution
    gives the source and vintage of the communes (``communes.attrs``) and of the territories.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`), a clean coverage (as in the bundle).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`, or columns ``cpts``, ``insee``
        and optionally ``status``, ``status_date``, ``share``).
    departement : str or sequence of str, optional
        Map only these départements (the coverage rate is theirs), but draw whole the CPTS
        that straddle into others (their other communes must be in ``communes``). None: every
        commune of ``communes``.
    title : str, optional
        Main title (plain text); default ``"Couverture CPTS — <département>"``. The coverage rate
        is always shown under it.
    offline : bool
        True (default): Leaflet is embedded in the page (``save``, Jupyter display), which then
        loads nothing from the network. False: folium's CDN links.
    tiles : str, optional
        Background tiles: a URL template (``"https://tiles.example/{z}/{x}/{y}.png"``, e.g. an
        intranet tile server) or a folium tile name (``"OpenStreetMap"``). None (default): no
        background, nothing downloaded.
    simplify : float, "auto" or None
        Tolerance of the coverage simplification (``shapely.coverage_simplify``,
        Visvalingam-Whyatt, in metres: about the square root of the area removed at a vertex),
        applied in Lambert-93 (or the local CRS overseas). ``"auto"`` (default): 250 up to
        2,000 communes drawn, 500 up to 10,000, 1,000 beyond (a national map stays under
        15 MB). None: no simplification. Coordinates are rounded to 5 decimals either way.
    as_of, statuses
        Only the CPTS that had reached a status by this date / with these statuses, as in
        :func:`cpts_geo.coverage.filter_territories`.

    Returns
    -------
    folium.Map
        The map; display it in Jupyter, write it with :func:`save_map` (or ``m.save``), or get
        the page with :func:`map_html`.

    Raises
    ------
    InputError
        If a frame is not what cpts_geo produces, a département is not in ``communes`` or a
        parameter is malformed.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": "Sud-Est Grenoblois", "status": "ACI signé",
    ...                   "insee": ["38421", "38158", "38309", "38179", "38533"]})
    >>> m = coverage_map(load_communes("38"), t)
    >>> page = map_html(m)
    >>> "Territoires CPTS" in page and "Zones blanches" in page
    True
    >>> "https://cdn" in page
    False
    """
    layers = _build(communes, territories, departement, as_of, statuses, simplify)
    main, sub = _title_texts(layers, title)
    big = len(layers.communes) > 3_000
    m = _CoverageMap(
        assets="inline" if offline else "cdn",
        tiles=None,
        control_scale=False,  # folium's scale shows miles too: a metric one is added below
        prefer_canvas=big,
        zoom_snap=0.25,
        font_size="0.8rem",
    )
    root = m.get_root()
    if isinstance(root, Figure):
        root.title = _esc(f"{main} — {sub}")
    if tiles is not None:
        if not isinstance(tiles, str) or not tiles.strip():
            raise InputError(f"`tiles` was {tiles!r}; expected a URL template, a name or None")
        m.add_child(_tile_layer(tiles))
    _add_layers(m, layers)
    m.add_child(_Overlay(main, sub, _legend_html(layers), _vintage_text(layers)))
    m.add_child(folium.LayerControl(collapsed=False, position="topright"))
    m.add_child(_MetricScale())
    bounds = _bounds(layers)
    if bounds is not None:
        m.fit_bounds(bounds)
    return m


def map_html(m: folium.Map, *, assets: str = "inline") -> str:
    """Render the map as a complete HTML page.

    Parameters
    ----------
    m : folium.Map
        A map (from :func:`coverage_map`, or any folium map using only Leaflet core).
    assets : str
        ``"inline"`` (default): Leaflet's JS and CSS (with its images) are embedded, the page
        works alone, offline. Any other string: a relative URL prefix (such as ``"../assets/"``)
        where :func:`write_assets` put Leaflet's files, shared by the pages of a site.

    Returns
    -------
    str
        The page. folium's CDN links (jQuery, Bootstrap, Leaflet from a CDN) are not in it.

    Examples
    --------
    >>> import folium
    >>> page = map_html(folium.Map(tiles=None), assets="../assets/")
    >>> '<script src="../assets/leaflet.js"></script>' in page
    True
    """
    if not isinstance(m, folium.Map):
        raise InputError(f"`m` was a {type(m).__name__}; expected a folium.Map")
    if not isinstance(assets, str) or not assets:
        raise InputError(
            f"`assets` was {assets!r}; expected 'inline' or a relative URL prefix such as "
            "'../assets/'"
        )
    if assets == "cdn":
        raise InputError("`assets` 'cdn' is not offered: use 'inline' or a local URL prefix")
    saved = {k: m.__dict__[k] for k in ("default_js", "default_css", "_cpts_geo_assets")
             if k in m.__dict__}
    try:
        if isinstance(m, _CoverageMap):
            m._cpts_geo_assets = assets
        else:
            _install_assets(m, assets)
        return m.get_root().render()
    finally:
        for k in ("default_js", "default_css", "_cpts_geo_assets"):
            if k in saved:
                m.__dict__[k] = saved[k]
            else:
                m.__dict__.pop(k, None)
        root = m.get_root()
        if not isinstance(m, _CoverageMap) and isinstance(root, Figure):
            root.header._children.pop(_ASSET_KEY, None)  # the user's map renders as before


def save_map(m: folium.Map, path: str | os.PathLike[str], *, assets: str = "inline") -> None:
    """Write the map's page to ``path`` atomically (a reader never sees a partial page).

    Parameters
    ----------
    m : folium.Map
        The map.
    path : str or path-like
        The HTML file to write (its directory is created).
    assets : str
        As in :func:`map_html`.

    Examples
    --------
    >>> import folium, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "carte.html"
    >>> save_map(folium.Map(tiles=None), out)
    >>> "Leaflet" in out.read_text(encoding="utf-8")
    True
    """
    write_text_atomic(path, map_html(m, assets=assets))


def write_assets(directory: str | os.PathLike[str]) -> list[Path]:
    """Copy Leaflet's files (``leaflet.js``, ``leaflet.css``, ``images/``) into ``directory``.

    For a static site whose pages share one copy: write them once, then render each page with
    ``map_html(m, assets="<relative path to directory>/")``.

    Parameters
    ----------
    directory : str or path-like
        Destination (created if needed).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Examples
    --------
    >>> import tempfile
    >>> sorted(p.name for p in write_assets(tempfile.mkdtemp()))[:3]
    ['layers-2x.png', 'layers.png', 'leaflet.css']
    """
    dest = Path(directory)
    static = _leaflet_dir()
    items = [(static / "leaflet.js", dest / "leaflet.js"),
             (static / "leaflet.css", dest / "leaflet.css")]
    items += [(img, dest / "images" / img.name) for img in _leaflet_images()]
    written = []
    for src, target in items:
        with atomic_path(target) as tmp, src.open("rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        written.append(target)
    return written


# ---------------------------------------------------------------------------------------------
# Static figure
# ---------------------------------------------------------------------------------------------
def _matplotlib() -> Any:
    try:
        import matplotlib.figure
        import matplotlib.patches
    except ImportError as exc:
        raise ImportError(
            "coverage_figure needs matplotlib: pip install 'cpts-geo[plot]' "
            "(or pip install matplotlib)"
        ) from exc
    return matplotlib


def _rgba(hex_colour: str, alpha: float) -> tuple[float, float, float, float]:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return (r, g, b, alpha)


_MPL_DASH: dict[str | None, Any] = {None: "-", "8 4": "--", "3 4": ":", "1 5": (0, (1, 4)),
                                    "10 3 2 3": "-."}


def _plot_layers(ax: Any, layers: _Layers, mask: np.ndarray, crs: int | None) -> None:
    def proj(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
        return gdf.to_crs(crs) if crs is not None else gdf

    cc = layers.communes[mask]
    codes = set(cc["insee"])
    cpts = proj(layers.cpts)
    if len(cpts):
        cpts = cpts[cpts.geometry.intersects(shapely.union_all(proj(cc).geometry.to_numpy()))
                    ] if len(cc) else cpts.iloc[0:0]
    for _, r in cpts.iterrows():
        fo, w, dash, _desc = _STATUS_STYLE[_status_of(r["status"])]
        gpd.GeoSeries([r.geometry], crs=cpts.crs).plot(
            ax=ax, facecolor=_rgba(r["colour"], fo), edgecolor=_darker(r["colour"]),
            linewidth=w * 0.6, linestyle=_MPL_DASH.get(dash, "-"), zorder=2)
    gaps = proj(layers.gaps) if len(layers.gaps) else layers.gaps
    if len(gaps):
        gaps = gaps[gaps["insee"].map(lambda s: bool(codes & set(str(s).split(", "))))]
        if len(gaps):
            gaps.plot(ax=ax, facecolor=_rgba(_GAP_FILL, 0.35), edgecolor=_GAP_LINE,
                      hatch="///", linewidth=0.8, zorder=3)
    ov = layers.overlaps[layers.overlaps["insee"].isin(codes)]
    if len(ov):
        proj(ov).plot(ax=ax, facecolor=_rgba(_OVERLAP_FILL, 0.4), edgecolor=_OVERLAP_LINE,
                      hatch="xx", linewidth=0.8, zorder=4)
    if len(cc):
        proj(cc).plot(ax=ax, facecolor="none", edgecolor="#555555",
                      linewidth=0.15 if len(cc) > 3000 else 0.3, zorder=5)
    deps = layers.departements
    deps = deps[deps["departement"].isin(set(cc["departement"].astype(str)))]
    if len(deps):
        proj(deps).plot(ax=ax, facecolor="none", edgecolor="black", linewidth=1.0, zorder=6)
    ax.set_axis_off()
    ax.set_aspect("equal")


def coverage_figure(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    departement: str | Sequence[str] | None = None,
    ax: matplotlib.axes.Axes | None = None,
    title: str | None = None,
    as_of: DateLike = None,
    statuses: Iterable[str] | None = None,
) -> matplotlib.figure.Figure:
    """Draw the picture of :func:`coverage_map` as a static matplotlib figure (PNG, SVG, PDF).

    Parameters
    ----------
    communes, territories, departement, title, as_of, statuses
        As in :func:`coverage_map`.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes (their figure is returned); default: a new figure. The figure is
        built with the object API (``matplotlib.figure.Figure``), without pyplot's global state,
        so it works on a server (no display needed).

    Returns
    -------
    matplotlib.figure.Figure
        The figure; ``fig.savefig("carte.png", dpi=150)``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install 'cpts-geo[plot]'``).

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": "Sud-Est Grenoblois", "status": "ACI signé",
    ...                   "insee": ["38421", "38158", "38309", "38179", "38533"]})
    >>> fig = coverage_figure(load_communes("38"), t)
    >>> fig.get_suptitle()
    'Couverture CPTS — Isère (38)'
    >>> "de la population couverte" in fig.axes[0].get_title()
    True
    """
    mpl = _matplotlib()
    from matplotlib.patches import Patch

    layers = _build(communes, territories, departement, as_of, statuses, "auto")
    main, sub = _title_texts(layers, title)
    if ax is None:
        fig = mpl.figure.Figure(figsize=(10, 10), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    deps = layers.communes["departement"].astype(str)
    local = deps.map(_LOCAL_CRS)
    metro = local.isna().to_numpy()
    if metro.any():
        _plot_layers(ax, layers, metro, _METRO_CRS)
        overseas = sorted(set(deps[~metro]))
        for i, code in enumerate(overseas):
            inset = ax.inset_axes((0.0, 0.02 + i * 0.15, 0.13, 0.13))
            _plot_layers(inset, layers, (deps == code).to_numpy(), _LOCAL_CRS[code])
            inset.set_title(code, fontsize=7)
    else:
        codes = sorted(set(local))
        _plot_layers(ax, layers, np.ones(len(deps), dtype=bool),
                     codes[0] if len(codes) == 1 else None)
    fig.suptitle(main, fontsize=14, fontweight="bold")
    ax.set_title(sub, loc="center", fontsize=10)
    handles = []
    cpts = layers.cpts
    if 0 < len(cpts) <= 12:
        for _, r in cpts.sort_values("cpts").iterrows():
            fo, _w, dash, _desc = _STATUS_STYLE[_status_of(r["status"])]
            handles.append(Patch(facecolor=_rgba(r["colour"], fo), edgecolor=_darker(r["colour"]),
                                 linestyle=_MPL_DASH.get(dash, "-"),
                                 label=f"{r['cpts']} ({_status_of(r['status'])})"))
    present = {_status_of(s) for s in cpts["status"]} if len(cpts) else set()
    for status in _STATUS_ORDER:
        if status in present:
            fo, _w, dash, desc = _STATUS_STYLE[status]
            handles.append(Patch(facecolor=_rgba("#1f78b4", fo), edgecolor="#14507a",
                                 linestyle=_MPL_DASH.get(dash, "-"),
                                 label=f"statut {status} : {desc}"))
    handles.append(Patch(facecolor=_rgba(_GAP_FILL, 0.35), edgecolor=_GAP_LINE, hatch="///",
                         label="zone blanche (commune couverte par aucune CPTS)"))
    handles.append(Patch(facecolor=_rgba(_OVERLAP_FILL, 0.4), edgecolor=_OVERLAP_LINE,
                         hatch="xx", label="chevauchement (commune de plusieurs CPTS)"))
    legend = fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8,
                        frameon=False)
    legend.set_title(textwrap.fill(_vintage_text(layers), 150), prop={"size": 6})
    legend.get_title().set_color("#444444")
    return fig
