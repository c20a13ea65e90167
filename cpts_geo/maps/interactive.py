"""The interactive coverage map (folium/Leaflet), offline by default.

:func:`coverage_map` draws, as layers that can be switched on and off, the CPTS territories
(each its own colour, two neighbouring CPTS never the same; the style says the status), the gap
zones, the overlaps, the commune borders and the département outlines, with tooltips and popups,
a legend, a title giving the coverage rate and the data vintage in the attribution.

Offline by default: the page embeds Leaflet (see :mod:`cpts_geo.maps.assets`) and loads nothing
from the network unless background ``tiles`` are asked for. Every text that comes from an input
(CPTS and commune names, statuses, sources, titles) is HTML-escaped before it reaches the page;
the data embedded in ``<script>`` escapes ``<``, ``>`` and ``&`` so that a name such as
``</script>`` cannot end the script.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from folium.elements import ElementAddToElement
from folium.template import Template

from .._atomic import write_text_atomic
from ..errors import InputError, public
from ..geography import LOCAL_CRS
from ..typing import DateLike
from .assets import inline_assets, linked_assets
from .layers import (
    Layers,
    Simplify,
    build_layers,
    prepare_for_map,
    title_texts,
    tolerance,
    vintage_short,
    vintage_text,
)
from .styles import (
    GAP_FILL,
    GAP_LINE,
    HOLE_FILL,
    HOLE_LINE,
    LAYER_COMMUNES,
    LAYER_CPTS,
    LAYER_DEPARTEMENTS,
    LAYER_GAPS,
    LAYER_HOLES,
    LAYER_LABELS,
    LAYER_OVERLAPS,
    LAYER_PROPOSALS,
    LAYER_RATES,
    MAX_LISTED_CPTS,
    MAX_LISTED_NAMES,
    OVERLAP_FILL,
    OVERLAP_LINE,
    PROPOSAL_LINE,
    PROPOSAL_STATUS,
    RATE_CLASSES,
    STATUS_ORDER,
    STATUS_STYLE,
    UNKNOWN_STATUS,
    darker,
    esc,
    fr_int,
    fr_num,
    int_or_none,
    js,
    js_safe,
    plural,
    rate_colour,
    size_label,
    status_of,
    swatch,
)

__all__ = ["comparison_map", "coverage_map", "map_html", "overview_map", "render_comparison",
           "render_map", "save_map"]

_FOLIUM_ASSET_NAMES = frozenset(name for name, _ in [*folium.Map.default_js,
                                                       *folium.Map.default_css])
_ASSET_KEY = "cpts_geo_leaflet"

class _LeafletAssets(Element):
    """Leaflet's JS and CSS, inlined or linked from a local prefix."""

    def __init__(self, assets: str):
        super().__init__()
        self._name = "LeafletAssets"
        self.assets = assets

    def render(self, **kwargs: Any) -> str:
        if self.assets == "inline":
            return inline_assets()
        return linked_assets(self.assets)


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


class _Raw(Element):
    """Text added to a page as it is (never rendered as a template)."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def render(self, **kwargs: Any) -> str:
        return self.text


class _RawMacro(MacroElement):
    """A macro element whose macros' output is added to the page as it is.

    branca compiles a macro's output again as a template: for the data of a map (names of
    CPTS, places) that costs a Jinja tokenisation of all of it, and reads ``{{`` in a name as
    Jinja.
    """

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]
        figure = self.get_root()
        assert isinstance(figure, Figure), "a map element is rendered in a Figure"
        macros = self._template.module.__dict__
        for part in ("header", "html", "script"):
            if part in macros:
                getattr(figure, part).add_child(_Raw(macros[part](self, kwargs)),
                                                name=self.get_name())
        for child in self._children.values():
            child.render(**kwargs)


class _CoverageMap(folium.Map, _RawMacro):
    """A folium Map whose Leaflet assets are inline (offline) or folium's CDN links.

    Its parts and children are added to the page as they are (see :class:`_RawMacro`).

    The choice applies to every render: ``save``, ``_repr_html_`` (Jupyter) and
    ``get_root().render()``.
    """

    def __init__(self, *, assets: str = "inline", **kwargs: Any):
        super().__init__(**kwargs)
        self._cpts_geo_assets = assets

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]
        _install_assets(self, self._cpts_geo_assets)
        super().render(**kwargs)



def _rows(df: pd.DataFrame, *columns: str) -> list[dict[str, Any]]:
    """These columns of each row of ``df`` as dicts, each value as its column holds it.

    Column by column: ``iterrows`` makes a Series of each row, which costs more than the map.
    """
    values = [df[c].to_numpy(dtype=object) for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _proposals_legend(proposals: pd.DataFrame) -> list[str]:
    """The legend's section on propositions: their style, and each one when few."""
    fo, w, dash, desc = STATUS_STYLE[PROPOSAL_STATUS]
    rows = [f'<div class="cpts-geo-sec">{esc(LAYER_PROPOSALS)} ({len(proposals)})</div>',
            f"<div>{swatch('#1f78b4', PROPOSAL_LINE, fo, w, dash)} <small>{esc(desc)}"
            "</small></div>"]
    if len(proposals) <= MAX_LISTED_CPTS:
        for r in _rows(proposals.sort_values("cpts_id"), "colour", "cpts", "population"):
            rows.append(f"<div>{swatch(r['colour'], PROPOSAL_LINE, fo, w, dash)} "
                        f"{esc(r['cpts'])} <small>({fr_int(r['population'])} hab.)</small>"
                        "</div>")
    return rows


def _legend_html(layers: Layers) -> str:
    rows: list[str] = []
    proposals = layers.cpts[layers.cpts["proposal"].to_numpy(dtype=bool)]
    cpts = layers.cpts[~layers.cpts["proposal"].to_numpy(dtype=bool)]
    rows.append(f'<div class="cpts-geo-sec">{esc(LAYER_CPTS)} ({len(cpts)})</div>')
    if len(cpts) == 0:
        rows.append("<div>aucune CPTS sur ce territoire</div>")
    elif len(cpts) <= MAX_LISTED_CPTS:
        for r in _rows(cpts.sort_values("cpts"), "colour", "cpts", "status"):
            fo, w, dash, _desc = STATUS_STYLE[status_of(r["status"])]
            rows.append(
                f"<div>{swatch(r['colour'], darker(r['colour']), fo, w, dash)} "
                f"{esc(r['cpts'])} <small>({esc(status_of(r['status']))})</small></div>"
            )
    rows.append("<div><small>Deux CPTS voisines n'ont jamais la même couleur.</small></div>")
    rows.append('<div class="cpts-geo-sec">Statut (style du territoire)</div>')
    present = {status_of(s) for s in cpts["status"]} if len(cpts) else set()
    for status in STATUS_ORDER:
        if status == UNKNOWN_STATUS and status not in present:
            continue
        fo, w, dash, desc = STATUS_STYLE[status]
        rows.append(
            f"<div>{swatch('#1f78b4', '#14507a', fo, w, dash)} {esc(status)} "
            f"<small>: {esc(desc)}</small></div>"
        )
    if len(proposals):
        rows += _proposals_legend(proposals)
    gaps = layers.gaps
    n_gap = int(gaps["n_communes"].sum()) if len(gaps) else 0
    gap_pop = float(pd.to_numeric(gaps["population"], errors="coerce").sum()) if len(gaps) else 0
    rows.append('<div class="cpts-geo-sec">Diagnostic</div>')
    rows.append(
        f"<div>{swatch(GAP_FILL, GAP_LINE, 0.45, 2, None)} <b>Zone blanche</b> : commune "
        f"couverte par aucune CPTS <small>({plural(n_gap, 'commune')}, "
        f"{fr_int(gap_pop)} hab., {plural(len(gaps), 'zone')})</small></div>"
    )
    if layers.overview:
        rows.append(f'<div class="cpts-geo-sec">{esc(LAYER_RATES)}</div>')
        bounds = [low for low, _ in RATE_CLASSES] + [1.0]
        for (low, colour), high in zip(RATE_CLASSES, bounds[1:], strict=True):
            label = (f"{round(100 * low)} % et plus" if high >= 1.0
                     else f"{round(100 * low)} à {round(100 * high)} %")
            rows.append(f"<div>{swatch(colour, '#666666', 0.75, 1, None)} {esc(label)}</div>")
        rows.append("<div><small>Les communes sont sur la carte de chaque département.</small>"
                    "</div>")
    else:
        rows.append(
            f"<div>{swatch(OVERLAP_FILL, OVERLAP_LINE, 0.45, 2, '2 2')} <b>Chevauchement</b> : "
            f"commune revendiquée par plusieurs CPTS <small>("
            f"{plural(len(layers.overlaps), 'commune')})</small></div>"
        )
        rows.append(f"<div>{swatch(None, '#555555', 0, 1, None)} {esc(LAYER_COMMUNES)}</div>")
        rows.append(f"<div>{swatch(None, '#000000', 0, 2.5, None)} "
                    f"{esc(LAYER_DEPARTEMENTS)}</div>")
    holes = layers.holes
    if holes is not None and len(holes):
        area = float(holes["area_km2"].sum())
        rows.append(
            f"<div>{swatch(HOLE_FILL, HOLE_LINE, 0.7, 1.5, '4 3')} <b>Trou des contours</b> : "
            "terrain qu’aucune commune ne couvre dans les contours de référence (contour "
            "périmé d’une commune qui en a absorbé d’autres) ; les populations sont celles "
            f"des communes entières <small>({plural(len(holes), 'trou')}, "
            f"{fr_num(area, 1)} km²)</small></div>"
        )
    if layers.labels is not None and len(layers.labels):
        rows.append(f"<div><b>Noms</b> : les {len(layers.labels)} communes les plus peuplées "
                    "<small>(autant que la place le permet : zoomer en montre plus)</small>"
                    "</div>")
    if layers.n_missing_geometry:
        rows.append(
            f"<div><small>{layers.n_missing_geometry} commune(s) sans contour dans les données "
            "de référence, non dessinée(s) mais comptée(s).</small></div>"
        )
    rows.append(f'<div class="cpts-geo-source"><small>{esc(vintage_short(layers))} '
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
.cpts-geo-label { pointer-events: none; }
.cpts-geo-label span { position: absolute; transform: translate(-50%, -50%); white-space: nowrap;
  font: 600 12px/1.1 system-ui, sans-serif; color: #1d1d1d;
  text-shadow: 0 0 2px #fff, 0 0 3px #fff, 0 0 4px #fff; }
@media (max-width: 700px) {
  .cpts-geo-title { left: 50px; max-width: calc(100% - 110px); min-width: 0; padding: 4px 8px;
    font-size: 12px; }
  .cpts-geo-title .cpts-geo-main { font-size: 14px; }
  .cpts-geo-legend { top: 96px; bottom: auto; max-width: calc(100% - 40px); max-height: 55%; }
  .leaflet-control-attribution { max-width: 100%; font-size: 9px !important; }
  .cpts-geo-label span { font-size: 11px; }
}
"""


class _Pane(folium.map.CustomPane, _RawMacro):
    """A map pane, added to the page as it is (see :class:`_RawMacro`)."""


class _AddTo(ElementAddToElement, _RawMacro):
    """folium's statement adding a layer to the map, added to the page as it is."""


class _Group(folium.FeatureGroup, _RawMacro):
    """A layer of the layer control, added to the page as it is (see :class:`_RawMacro`).

    So is the statement folium adds to show it at first.
    """

    def add_child(self, child: Element, name: str | None = None,
                  index: int | None = None) -> Element:
        if type(child) is ElementAddToElement:
            child = _AddTo(child.element_name, child.element_parent_name)
        return super().add_child(child, name=name, index=index)


class _LayerControl(folium.LayerControl, _RawMacro):
    """The layer control, added to the page as it is (see :class:`_RawMacro`)."""


class _Overlay(_RawMacro):
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
        {{ this._parent.get_name() }}.attributionControl.setPrefix("Carte : Leaflet");
        {{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.attribution }});
        {% endmacro %}
        """
    )

    def __init__(self, main: str, sub: str, legend: str, attribution: str):
        super().__init__()
        self._name = "CptsGeoOverlay"
        self.css = _CSS
        self.main = esc(main)
        self.sub = esc(sub)
        self.legend = legend  # already built from escaped parts
        self.attribution = js(esc(attribution))


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


class _SmallScreen(_RawMacro):
    """On a small screen (700 px or less), the legend and the layer control start folded."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "if (window.matchMedia && window.matchMedia('(max-width: 700px)').matches) {"
        " document.querySelectorAll('details.cpts-geo-legend').forEach("
        "function (d) { d.open = false; });"
        " {{ this.control }}.collapse();"
        " {{ this._parent.get_name() }}.on('click', function () {"
        " {{ this.control }}.collapse(); });"
        "}"
        "{% endmacro %}"
    )

    def __init__(self, control: folium.LayerControl):
        super().__init__()
        self._name = "CptsGeoSmallScreen"
        self.control = control.get_name()


class _Labels(_RawMacro):
    """Names of places, drawn as text on the map (escaped, not interactive)."""

    # most populous first; a name that would overlap one already shown is hidden at this zoom
    _template = Template(
        """{% macro script(this, kwargs) %}
(function () {
  var group = {{ this._parent.get_name() }}, map = {{ this._parent._parent.get_name() }};
  var marks = {{ this.data }}.map(function (d) {
    return L.marker([d[1], d[0]], {pane: "cpts_geo_labels", interactive: false,
      keyboard: false, icon: L.divIcon({className: "cpts-geo-label", iconSize: null,
      html: "<span>" + d[2] + "</span>"})}).addTo(group);
  });
  function declutter() {
    var shown = [];
    marks.forEach(function (mk) {
      var el = mk.getElement();
      if (!el || !el.firstChild) { return; }
      var span = el.firstChild;
      span.style.visibility = "visible";
      var r = span.getBoundingClientRect();
      var hit = shown.some(function (q) {
        return r.left < q.right + 6 && r.right + 6 > q.left && r.top < q.bottom + 2
          && r.bottom + 2 > q.top;
      });
      if (hit) { span.style.visibility = "hidden"; } else { shown.push(r); }
    });
  }
  map.on("zoomend", declutter);
  group.on("add", function () { setTimeout(declutter, 0); });
  map.whenReady(function () { setTimeout(declutter, 0); });
})();
{% endmacro %}"""
    )

    def __init__(self, labels: pd.DataFrame):
        super().__init__()
        self._name = "CptsGeoLabels"
        # every name is HTML-escaped here; js() keeps the data inert inside <script>
        self.data = js([[float(r["lon"]), float(r["lat"]), esc(r["nom"])]
                        for r in labels.to_dict("records")])


class _Focus(_RawMacro):
    """Open the map on the CPTS named in the page's address: ``map.html#cpts=<cpts_id>``.

    The CPTS pages of the site show their département's map this way, centred on the CPTS and
    with its outline thickened. The id is only compared with the ids of the map's CPTS.
    """

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "(function () {"
        " var m = /^#cpts=(.+)$/.exec(window.location.hash);"
        " if (!m) { return; }"
        " var want = decodeURIComponent(m[1]), H = {{ this.helpers }};"
        " {{ this.layer }}.eachLayer(function (l) {"
        "  var c = H.cpts[l.feature.properties.i];"
        "  if (c && c.id === want) {"
        "   {{ this._parent.get_name() }}.fitBounds(l.getBounds(),"
        " {padding: [40, 40], maxZoom: 12});"
        "   l.setStyle({weight: 6, color: \"#111111\", opacity: 1});"
        "   document.querySelectorAll('details.cpts-geo-legend').forEach("
        "function (d) { d.open = false; });"
        "  }"
        " });"
        "})();"
        "{% endmacro %}"
    )

    def __init__(self, layer: MacroElement, helpers: MacroElement):
        super().__init__()
        self._name = "CptsGeoFocus"
        self.layer = layer.get_name()
        self.helpers = helpers.get_name()


class _MetricScale(_RawMacro):
    """A scale bar in kilometres only."""

    _template = Template(
        "{% macro script(this, kwargs) %}"
        "L.control.scale({imperial: false}).addTo({{ this._parent.get_name() }});"
        "{% endmacro %}"
    )


class _Helpers(_RawMacro):
    """Per-map JS helpers and the table of CPTS that tooltips refer to by index."""

    _template = Template("{% macro script(this, kwargs) %}" + _HELPERS_JS + "{% endmacro %}")

    def __init__(self, cpts: list[dict[str, Any]]):
        super().__init__()
        self._name = "CptsGeoHelpers"
        self.cpts_js = js(cpts)


class _GeoJsonLayer(_RawMacro):
    """A GeoJSON layer embedded as compact, script-safe JSON.

    The data sit in a ``<script type="application/json">`` element of the page, read with
    ``JSON.parse``: the browser's JSON parser reads them several times faster than a JavaScript
    object literal of the same size.

    Its tooltips and popups are built by JS functions from properties that were HTML-escaped in
    Python.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson(JSON.parse(
            document.getElementById("{{ this.get_name() }}_data").textContent), {
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
        geoms = np.empty(len(properties), dtype=object)
        geoms[:] = list(geometries)
        if len(geoms) != len(properties):  # pragma: no cover - a programming error
            raise ValueError("one geometry per feature")
        drawn = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
        geoms = geoms[drawn]
        single = (shapely.get_type_id(geoms) == 6) & (shapely.get_num_geometries(geoms) == 1)
        geoms[single] = shapely.get_geometry(geoms[single], 0)  # a Polygon is shorter to write
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                 allow_nan=False).encode
        # GEOS writes numbers only: the data are made script-safe once, as a whole (js_safe)
        features = ['{"type":"Feature","properties":' + dumps(properties[i])
                    + ',"geometry":' + text + "}"
                    for i, text in zip(drawn.tolist(), shapely.to_geojson(geoms).tolist(),
                                       strict=True)]
        self.n_features = len(features)
        self.data_js = js_safe('{"type":"FeatureCollection","features":['
                               + ",".join(features) + "]}")
        self.pane = pane
        self.style_js = ("function (f) { return f.properties.style; }" if style is None
                         else js(style))
        self.interactive = tooltip_js is not None
        self.tooltip_js = tooltip_js
        self.popup_js = popup_js or tooltip_js
        self.helpers = helpers.get_name()

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]
        """Add the data element to the page's body (as it is), then the script."""
        figure = self.get_root()
        assert isinstance(figure, Figure), "a layer is rendered in a Figure"
        name = self.get_name()
        figure.html.add_child(_Raw(f'<script type="application/json" id="{name}_data">'
                                   f"{self.data_js}</script>"), name=name)
        super().render(**kwargs)


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


_RATE_TIP = """function (p, H) {
    return H.table(p.nom + " (" + p.dep + ")",
                   [["Couverture", H.pct(p.rate)], ["Population", H.n(p.pop) + " hab."],
                    ["Couverte", H.n(p.cov) + " hab."], ["CPTS", H.n(p.n)]]);
}"""
_RATE_POPUP = """function (p, H) {
    var h = H.table(p.nom + " (" + p.dep + ")",
                    [["Couverture", H.pct(p.rate)], ["Population", H.n(p.pop) + " hab."],
                     ["Couverte", H.n(p.cov) + " hab."], ["CPTS", H.n(p.n)]]);
    return p.url ? h + '<p><a href="' + p.url + '" target="_top">Page du département</a></p>'
                 : h;
}"""


def _cpts_records(layers: Layers) -> tuple[list[dict[str, Any]], dict[str, int]]:
    info = layers.cpts_info
    index = {cid: i for i, cid in enumerate(info["cpts_id"])}
    records = [
        {
            "nom": esc(r["cpts"]),
            "statut": esc(status_of(r["status"])),
            "pop": int_or_none(r["population"]),
            "n": int_or_none(r["n_communes"]),
            "taille": esc(size_label(r["size_class"])),
            "deps": esc(r["departements"]),
            "id": esc(r["cpts_id"]),  # compared with the page's #cpts= (see _Focus), escaped
        }
        for r in _rows(info, "cpts", "status", "population", "n_communes", "size_class",
                       "departements", "cpts_id")
    ]
    return records, index


def _k(cpts_ids: object, index: dict[str, int]) -> list[int]:
    if not isinstance(cpts_ids, str) or not cpts_ids:
        return []
    return [index[c] for c in cpts_ids.split("; ") if c in index]


def _add_layers(m: folium.Map, layers: Layers) -> MacroElement:
    """Add the layers of the map; return the element that opens it on a CPTS (add it last)."""
    records, index = _cpts_records(layers)
    helpers = _Helpers(records)
    m.add_child(helpers)
    panes = [("cpts_geo_rates", 405, True), ("cpts_geo_cpts", 410, True),
             ("cpts_geo_gaps", 420, True), ("cpts_geo_proposals", 425, True),
             ("cpts_geo_holes", 427, True), ("cpts_geo_overlaps", 430, True),
             ("cpts_geo_communes", 440, True), ("cpts_geo_departements", 450, False),
             ("cpts_geo_labels", 460, False)]
    for name, z, events in panes:
        m.add_child(_Pane(name, z_index=z, pointer_events=events))

    if layers.overview:
        _add_rates(m, layers, helpers)

    # CPTS territories, then the propositions in their own layer (drawn over the gap zones)
    thin = len(layers.communes) > 3_000 or layers.overview  # national map: lighter lines
    proposal = layers.cpts["proposal"].to_numpy(dtype=bool)
    for name, pane, cpts in ((LAYER_CPTS, "cpts_geo_cpts", layers.cpts[~proposal]),
                             (LAYER_PROPOSALS, "cpts_geo_proposals", layers.cpts[proposal])):
        if name == LAYER_PROPOSALS and not len(cpts):
            continue
        props = []
        for r in _rows(cpts, "status", "colour", "cpts_id"):
            fo, w, dash, _desc = STATUS_STYLE[status_of(r["status"])]
            line = PROPOSAL_LINE if name == LAYER_PROPOSALS else darker(r["colour"])
            style = {"color": line, "weight": w / 2 if thin else w,
                     "fillColor": r["colour"],
                     "fillOpacity": fo / 3 if layers.overview else fo, "opacity": 0.95}
            if dash:
                style["dashArray"] = dash
            props.append({"i": index[r["cpts_id"]], "style": style})
        group = _Group(name=name, show=True)
        layer = _GeoJsonLayer(props, list(cpts.geometry), pane=pane, style=None,
                              helpers=helpers, tooltip_js=_CPTS_TIP)
        group.add_child(layer)
        m.add_child(group)
        if name == LAYER_CPTS:
            focus = _Focus(layer, helpers)  # added last, after the map's bounds

    # gap zones
    gaps = layers.gaps
    cc = layers.communes
    props = []
    for r in _rows(gaps, "noms", "zone", "n_communes", "population", "neighbour_cpts",
                   "enclave", "enclosed_by"):
        names = str(r["noms"]).split(", ")
        listed = ", ".join(names[:MAX_LISTED_NAMES])
        if len(names) > MAX_LISTED_NAMES:
            listed += f" … et {len(names) - MAX_LISTED_NAMES} autres"
        props.append({
            "zone": int(r["zone"]), "n": int(r["n_communes"]),
            "pop": int_or_none(r["population"]), "noms": esc(listed),
            "voisines": esc(r["neighbour_cpts"]),
            "enclave": esc(r["enclosed_by"]) if bool(r["enclave"]) else "",
        })
    # under propositions the gap zones would tint them: listed, switchable, hidden at first
    group = _Group(name=LAYER_GAPS, show=not layers.n_proposals)
    group.add_child(_GeoJsonLayer(
        props, list(gaps.geometry) if len(gaps) else [], pane="cpts_geo_gaps",
        style={"color": GAP_LINE, "weight": 1 if layers.overview else 2, "fillColor": GAP_FILL,
               "fillOpacity": 0.25 if layers.overview else 0.4, "opacity": 0.9},
        helpers=helpers, tooltip_js=_GAP_TIP, popup_js=_GAP_POPUP))
    m.add_child(group)
    _add_holes_and_labels(m, layers, helpers)

    if layers.overview:
        return focus

    # overlaps
    ov = layers.overlaps
    noms = ov["nom"] if "nom" in ov.columns else ov["insee"]
    props = [
        {"nom": esc(nom), "insee": esc(r["insee"]), "k": _k(r["cpts_ids"], index),
         "share": float(r["claimed_share"]), "ovpop": int_or_none(r["overlap_population"])}
        for nom, r in zip(noms, _rows(ov, "insee", "cpts_ids", "claimed_share",
                                      "overlap_population"), strict=True)
    ]
    group = _Group(name=LAYER_OVERLAPS, show=True)
    group.add_child(_GeoJsonLayer(
        props, list(ov.geometry), pane="cpts_geo_overlaps",
        style={"color": OVERLAP_LINE, "weight": 2, "dashArray": "2 3",
               "fillColor": OVERLAP_FILL, "fillOpacity": 0.45},
        helpers=helpers, tooltip_js=_OVERLAP_TIP))
    m.add_child(group)

    # communes
    noms = cc["nom"] if "nom" in cc.columns else cc["insee"]
    props = [
        {"nom": esc(nom), "insee": esc(code), "pop": int_or_none(pop), "k": _k(ids, index)}
        for nom, code, pop, ids in zip(noms, cc["insee"], cc["population"], cc["cpts_ids"],
                                       strict=True)
    ]
    group = _Group(name=LAYER_COMMUNES, show=True)
    group.add_child(_GeoJsonLayer(
        props, list(cc.geometry), pane="cpts_geo_communes",
        style={"color": "#555555", "weight": 0.3 if thin else 0.6, "opacity": 0.7, "fill": True,
               "fillOpacity": 0.0},
        helpers=helpers, tooltip_js=_COMMUNE_TIP, popup_js=_COMMUNE_POPUP))
    m.add_child(group)

    # département outlines (not interactive: they never hide the communes' tooltips)
    deps = layers.departements
    group = _Group(name=LAYER_DEPARTEMENTS, show=True)
    group.add_child(_GeoJsonLayer(
        [{"nom": esc(n), "dep": esc(c)} for n, c in zip(deps["nom"], deps["departement"],
                                                         strict=True)],
        list(deps.geometry), pane="cpts_geo_departements",
        style={"color": "#000000", "weight": 2.5 if len(deps) <= 5 else 1.2, "opacity": 0.9,
               "fill": False},
        helpers=helpers))
    m.add_child(group)
    return focus


_HOLE_TIP = """function (p, H) {
    return H.table("Trou des contours de référence",
                   [["Surface", p.km2], ["Pourquoi", "aucune commune ne couvre ce terrain "
                     + "dans les contours (contour périmé d'une commune fusionnée)"]]);
}"""


def _add_holes_and_labels(m: folium.Map, layers: Layers, helpers: _Helpers) -> None:
    """The holes of the boundary data, and the names of the main communes."""
    holes = layers.holes
    if holes is not None and len(holes):
        group = _Group(name=LAYER_HOLES, show=True)
        group.add_child(_GeoJsonLayer(
            [{"km2": esc(f"{fr_num(float(a), 1)} km²")} for a in holes["area_km2"]],
            list(holes.geometry), pane="cpts_geo_holes",
            style={"color": HOLE_LINE, "weight": 1.5, "dashArray": "4 3",
                   "fillColor": HOLE_FILL, "fillOpacity": 0.7, "opacity": 0.9},
            helpers=helpers, tooltip_js=_HOLE_TIP))
        m.add_child(group)
    if layers.labels is not None and len(layers.labels):
        group = _Group(name=LAYER_LABELS, show=True)
        group.add_child(_Labels(layers.labels))
        m.add_child(group)


def _add_rates(m: folium.Map, layers: Layers, helpers: _Helpers) -> None:
    """Départements shaded by their coverage rate (the overview map)."""
    deps = layers.departements
    props = []
    for r in deps.to_dict("records"):
        props.append({
            "nom": esc(r["nom"]), "dep": esc(r["departement"]), "rate": r["coverage_rate"],
            "pop": int_or_none(r["population"]), "cov": int_or_none(r["covered_population"]),
            "n": int_or_none(r["n_cpts"]), "url": esc(layers.links.get(r["departement"], "")),
            "style": {"color": "#666666", "weight": 0.5, "fillColor": rate_colour(
                r["coverage_rate"]), "fillOpacity": 0.75},
        })
    group = _Group(name=LAYER_RATES, show=True)
    group.add_child(_GeoJsonLayer(props, list(deps.geometry), pane="cpts_geo_rates", style=None,
                                  helpers=helpers, tooltip_js=_RATE_TIP, popup_js=_RATE_POPUP))
    m.add_child(group)


def _bounds(layers: Layers) -> list[list[float]] | None:
    """Bounds to open the map on.

    Metropolitan France when it is drawn (overseas départements stay reachable by panning), else
    everything drawn.
    """
    cc = layers.departements if layers.overview else layers.communes
    geoms = cc.geometry.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    metro = ok & ~cc["departement"].astype(str).isin(list(LOCAL_CRS)).to_numpy()
    chosen = geoms[metro] if metro.any() else geoms[ok]
    if len(chosen) == 0:
        return None
    xmin, ymin, xmax, ymax = shapely.total_bounds(chosen)
    return [[float(ymin), float(xmin)], [float(ymax), float(xmax)]]


def _tile_layer(tiles: str) -> folium.TileLayer:
    if re.match(r"^(https?:)?//|^/|\{z\}", tiles):
        host = re.sub(r"^(https?:)?//", "", tiles).split("/")[0] or "serveur local"
        return folium.TileLayer(tiles=tiles, attr=f"Fond de carte : {esc(host)}",
                                name="Fond de carte", overlay=False, control=True)
    return folium.TileLayer(tiles=tiles, name="Fond de carte", overlay=False, control=True)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
@public
def coverage_map(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    departements: str | Sequence[str] | None = None,
    title: str | None = None,
    offline: bool = True,
    tiles: str | None = None,
    simplify: Simplify = "auto",
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> folium.Map:
    """Interactive map of the CPTS coverage of a territory.

    Layers (switchable in the layer control): CPTS territories (one colour each, neighbours
    never the same colour; fill and outline say the status), gap zones (communes covered by no
    CPTS), overlaps, commune borders and département outlines. Hovering shows a tooltip,
    clicking a popup (CPTS name, status, population, number of communes, ACI size class;
    commune name, INSEE code, population and CPTS). The title gives the coverage rate of the
    population of the départements shown; the legend explains the styles; the attribution
    gives the source and vintage of the communes (``communes.attrs``) and of the territories.

    Propositions (CPTS with status ``"proposition"``, such as those of
    :func:`cpts_geo.propose_territories`) are no CPTS: they have their own layer and legend
    section (black outline in long dashes), are drawn over the gap zones they would fill, and
    are not counted in the coverage rate of the title (which says how many inhabitants they
    would add).

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`), a clean coverage (as in the bundle).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`, or columns ``cpts``, ``insee``
        and optionally ``status``, ``status_date``, ``share``).
    departements : str or sequence of str, optional
        Map only these départements (codes or names; the coverage rate is theirs), but draw
        whole the CPTS that straddle into others (their other communes must be in
        ``communes``). None: every commune of ``communes``.
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
        :func:`cpts_geo.filter_territories` (the title gives the date in French).

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
    tolerance(simplify)  # fail early on a bad value
    if tiles is not None and (not isinstance(tiles, str) or not tiles.strip()):
        raise InputError(f"`tiles` was {tiles!r}; expected a URL template, a name or None")
    p, deps = prepare_for_map(communes, territories, departements, as_of, statuses)
    return render_map(build_layers(p, deps, simplify), title=title, offline=offline,
                      tiles=tiles)


@public
def overview_map(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    title: str | None = None,
    offline: bool = True,
    tiles: str | None = None,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> folium.Map:
    """A light map of the whole of France: départements shaded by coverage, CPTS, gap zones.

    Meant for a weak intranet PC: no commune layer (the communes are on each département's
    :func:`coverage_map`), outlines simplified to about 400 m (2 km for département borders).
    Every département's figures cover it whole (communes missing from ``communes`` are loaded
    from their source and vintage, with a warning).

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    title, offline, tiles, as_of, statuses
        As in :func:`coverage_map`.

    Returns
    -------
    folium.Map

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": "Sud-Est Grenoblois",
    ...                   "insee": ["38421", "38158", "38309", "38179", "38533"]})
    >>> page = map_html(overview_map(load_communes("38"), t))
    >>> "Taux de couverture des départements" in page and "Limites communales" not in page
    True
    """
    from .layers import build_overview

    p, _ = prepare_for_map(communes, territories, None, as_of, statuses, whole="departement")
    return render_map(build_overview(p), title=title, offline=offline, tiles=tiles)


def render_map(layers: Layers, *, title: str | None = None, offline: bool = True,
               tiles: str | None = None) -> folium.Map:
    """The folium map of layers already built (:func:`cpts_geo.maps.layers.build_layers`)."""
    main, sub = title_texts(layers, title)
    big = len(layers.communes) > 3_000
    m = _CoverageMap(
        assets="inline" if offline else "cdn",
        tiles=None,
        control_scale=False,  # folium's scale shows miles too: a metric one is added below
        prefer_canvas=big or layers.overview,
        zoom_snap=0.25,
        font_size="0.8rem",
    )
    root = m.get_root()
    if isinstance(root, Figure):
        root.title = esc(f"{main} — {sub}")
    if tiles is not None:
        m.add_child(_tile_layer(tiles))
    focus = _add_layers(m, layers)
    m.add_child(_Overlay(main, sub, _legend_html(layers), vintage_text(layers)))
    control = _LayerControl(collapsed=False, position="topright")
    m.add_child(control)
    m.add_child(_MetricScale())
    bounds = _bounds(layers)
    if bounds is not None:
        m.fit_bounds(bounds)
    m.add_child(_SmallScreen(control))
    m.add_child(focus)
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




# ---------------------------------------------------------------------------------------------
# The map of the differences between two states
# ---------------------------------------------------------------------------------------------
#: Style of a commune by its change: fill, outline, dash, French label (legend and tooltips).
CHANGE_STYLE: dict[str, tuple[str, str, str | None, str]] = {
    "entered": ("#1a9850", "#0b5d2e", None, "gagnée : entre dans la couverture"),
    "left": ("#d73027", "#8c1a10", "6 3", "perdue : sort de la couverture"),
    "moved": ("#4575b4", "#203f73", "2 3", "change de CPTS"),
}
CPTS_CHANGE_LABEL = {"created": "créée", "dissolved": "dissoute", "changed": "modifiée",
                     "unchanged": "inchangée"}
LAYER_CHANGES = "Communes gagnées, perdues, changeant de CPTS"
LAYER_BEFORE = "CPTS avant (tirets)"
LAYER_AFTER = "CPTS après"

_CHANGE_TIP = """function (p, H) {
    return H.table(p.nom + " (" + p.insee + ")",
                   [["Changement", p.chg || "aucun"], ["Avant", p.avant || "aucune CPTS"],
                    ["Après", p.apres || "aucune CPTS"], ["Population", H.n(p.pop) + " hab."]]);
}"""
_STATE_TIP = """function (p, H) {
    return H.table("CPTS " + p.nom + " (" + p.etat + ")",
                   [["Changement", p.chg], ["Détails", p.details || "—"]]);
}"""


def _change_details(details: dict[str, Any]) -> str:
    """The details of a CPTS's change, in French, for a tooltip (escape the result)."""
    parts = []
    if details.get("renamed_from"):
        parts.append(f"ancien nom : {details['renamed_from']}")
    if "status" in details:
        old, new = details["status"]
        parts.append(f"statut : {old or '—'} → {new or '—'}")
    if "status_date" in details:
        old, new = details["status_date"]
        parts.append(f"date : {old or '—'} → {new or '—'}")
    if details.get("communes_added"):
        parts.append(f"+{len(details['communes_added'])} communes")
    if details.get("communes_removed"):
        parts.append(f"−{len(details['communes_removed'])} communes")
    if details.get("shares"):
        parts.append(f"parts modifiées : {len(details['shares'])} communes")
    if "n_communes" in details:
        parts.append(plural(int(details["n_communes"]), "commune"))
    return " ; ".join(parts)


def _comparison_texts(layers: Any, title: str | None) -> tuple[str, str, dict[str, int]]:
    from .layers import area_label
    from .styles import fr_pct

    areas = layers.areas
    pop = float(areas["population"].sum())
    before = float(areas["before_covered_population"].sum())
    after = float(areas["after_covered_population"].sum())
    rate_b = before / pop if pop > 0 else None
    rate_a = after / pop if pop > 0 else None
    scope = layers.communes[layers.communes["in_scope"].to_numpy()]
    counts = {k: int((scope["change"] == k).sum()) for k in CHANGE_STYLE}
    place = area_label(areas.rename(columns={"after_rate": "coverage_rate"}))
    main = title if title is not None else f"Comparaison de deux états — {place}"
    delta = ("" if rate_a is None or rate_b is None
             else f" ({100 * (rate_a - rate_b):+.1f} point)".replace(".", ","))
    sub = (f"Couverture : {fr_pct(rate_b)} → {fr_pct(rate_a)}{delta} ; "
           f"{plural(counts['entered'], 'commune')} gagnée{'s' if counts['entered'] > 1 else ''}, "
           f"{counts['left']} perdue{'s' if counts['left'] > 1 else ''}, "
           f"{counts['moved']} changeant de CPTS")
    return main, sub, counts


def _comparison_legend(layers: Any, counts: dict[str, int]) -> str:
    from .layers import vintage_short

    rows = ['<div class="cpts-geo-sec">Communes</div>']
    for key, (fill, line, dash, label) in CHANGE_STYLE.items():
        rows.append(f"<div>{swatch(fill, line, 0.6, 2, dash)} {esc(label)} "
                    f"<small>({plural(counts[key], 'commune')})</small></div>")
    rows.append('<div class="cpts-geo-sec">CPTS</div>')
    rows.append(f"<div>{swatch(None, '#333333', 0, 2, '6 4')} {esc(LAYER_BEFORE)}</div>")
    rows.append(f"<div>{swatch('#1f78b4', '#14507a', 0.15, 2, None)} {esc(LAYER_AFTER)}</div>")
    n = layers.cpts["change"].value_counts()
    summary = ", ".join(f"{int(n.get(k, 0))} {label}{'s' if int(n.get(k, 0)) > 1 else ''}"
                        for k, label in CPTS_CHANGE_LABEL.items())
    rows.append(f"<div><small>{esc(summary)}</small></div>")
    if layers.n_missing_geometry:
        rows.append(f"<div><small>{layers.n_missing_geometry} commune(s) sans contour, non "
                    "dessinée(s) mais comptée(s).</small></div>")
    rows.append(f'<div class="cpts-geo-source"><small>{esc(vintage_short(layers))}'
                "</small></div>")
    return ('<details class="cpts-geo-legend" open><summary>Légende</summary>'
            + "".join(rows) + "</details>")


def render_comparison(layers: Any, *, title: str | None = None, offline: bool = True,
                      tiles: str | None = None) -> folium.Map:
    """The folium map of comparison layers (:func:`cpts_geo.maps.layers.build_comparison`)."""
    from .layers import vintage_text
    from .styles import palette_colour

    main, sub, counts = _comparison_texts(layers, title)
    m = _CoverageMap(assets="inline" if offline else "cdn", tiles=None, control_scale=False,
                     prefer_canvas=len(layers.communes) > 3_000, zoom_snap=0.25,
                     font_size="0.8rem")
    root = m.get_root()
    if isinstance(root, Figure):
        root.title = esc(f"{main} — {sub}")
    if tiles is not None:
        m.add_child(_tile_layer(tiles))
    helpers = _Helpers([])
    m.add_child(helpers)
    for name, z, events in (("cpts_geo_after", 410, True), ("cpts_geo_changes", 420, True),
                            ("cpts_geo_before", 430, True), ("cpts_geo_departements", 450,
                                                             False)):
        m.add_child(_Pane(name, z_index=z, pointer_events=events))

    after = layers.after
    after_props: list[dict[str, Any]] = []
    for i, r in enumerate(after.to_dict("records")):
        colour = palette_colour(i)
        after_props.append({"nom": esc(r["cpts"]), "etat": "après",
                      "chg": esc(CPTS_CHANGE_LABEL.get(r["change"], r["change"])),
                      "details": esc(_change_details(r["details"])),
                      "style": {"color": darker(colour), "weight": 2, "fillColor": colour,
                                "fillOpacity": 0.15, "opacity": 0.9}})
    group = _Group(name=LAYER_AFTER, show=True)
    group.add_child(_GeoJsonLayer(after_props, list(after.geometry), pane="cpts_geo_after",
                                  style=None, helpers=helpers, tooltip_js=_STATE_TIP))
    m.add_child(group)

    cc = layers.communes
    props: list[dict[str, Any]] = []
    for r in cc.to_dict("records"):
        fill, line, dash, label = CHANGE_STYLE.get(r["change"], (None, "#777777", None, ""))
        style: dict[str, Any] = {"color": line, "weight": 2 if fill else 0.5,
                                 "opacity": 0.9 if fill else 0.6, "fill": True,
                                 "fillColor": fill or "#ffffff",
                                 "fillOpacity": 0.55 if fill else 0.0}
        if dash:
            style["dashArray"] = dash
        props.append({"nom": esc(r["nom"]), "insee": esc(r["insee"]),
                      "pop": int_or_none(r["population"]), "chg": esc(label),
                      "avant": esc(r["before"]), "apres": esc(r["after"]), "style": style})
    group = _Group(name=LAYER_CHANGES, show=True)
    group.add_child(_GeoJsonLayer(props, list(cc.geometry), pane="cpts_geo_changes",
                                  style=None, helpers=helpers, tooltip_js=_CHANGE_TIP))
    m.add_child(group)

    before = layers.before
    props = [{"nom": esc(r["cpts"]), "etat": "avant",
              "chg": esc(CPTS_CHANGE_LABEL.get(r["change"], r["change"])),
              "details": esc(_change_details(r["details"]))}
             for r in before.to_dict("records")]
    group = _Group(name=LAYER_BEFORE, show=True)
    group.add_child(_GeoJsonLayer(
        props, list(before.geometry), pane="cpts_geo_before",
        style={"color": "#333333", "weight": 2.5, "dashArray": "6 4", "fill": False,
               "opacity": 0.9},
        helpers=helpers, tooltip_js=_STATE_TIP))
    m.add_child(group)

    deps = layers.departements
    group = _Group(name=LAYER_DEPARTEMENTS, show=True)
    group.add_child(_GeoJsonLayer(
        [{"dep": esc(c)} for c in deps["departement"]], list(deps.geometry),
        pane="cpts_geo_departements",
        style={"color": "#000000", "weight": 2.5 if len(deps) <= 5 else 1.2, "opacity": 0.9,
               "fill": False}, helpers=helpers))
    m.add_child(group)
    m.add_child(_Overlay(main, sub, _comparison_legend(layers, counts), vintage_text(layers)))
    control = _LayerControl(collapsed=False, position="topright")
    m.add_child(control)
    m.add_child(_MetricScale())
    m.add_child(_SmallScreen(control))
    # open on what changed and the CPTS drawn (the whole départements when nothing is drawn)
    geoms = np.concatenate([cc.geometry[(cc["change"] != "").to_numpy()].to_numpy(),
                            before.geometry.to_numpy(), after.geometry.to_numpy()])
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not ok.any():
        geoms = cc.geometry[cc["in_scope"].to_numpy()].to_numpy()
        ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if ok.any():
        xmin, ymin, xmax, ymax = shapely.total_bounds(geoms[ok])
        m.fit_bounds([[float(ymin), float(xmin)], [float(ymax), float(xmax)]])
    return m


@public
def comparison_map(
    communes: gpd.GeoDataFrame,
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    departements: str | Sequence[str] | None = None,
    title: str | None = None,
    offline: bool = True,
    tiles: str | None = None,
    simplify: Simplify = "auto",
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> folium.Map:
    """Interactive map of what changed from one state of the CPTS map to another.

    Communes that enter coverage (gagnées, green), leave it (perdues, red, dashed) or change
    CPTS (blue, dotted); the CPTS outlines before (dashed) and after (coloured), each with a
    tooltip saying whether it was created, dissolved, changed or unchanged and how; the
    coverage of the départements before and after in the title. The figures are those of
    :func:`cpts_geo.compare` on the same inputs. Offline, escaped and attributed as
    :func:`coverage_map`.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    before, after : pandas.DataFrame
        Membership tables (:func:`cpts_geo.read_territories`): today's map and a draft, or
        the same file at two dates.
    departements : str or sequence of str, optional
        Map these départements (whole; the CPTS that straddle into others are drawn whole).
        None: the départements of ``communes``.
    title, offline, tiles, simplify, as_of, statuses
        As in :func:`coverage_map` (``as_of`` and ``statuses`` filter both states).

    Returns
    -------
    folium.Map

    See Also
    --------
    cpts_geo.compare : the same comparison as tables.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> today = pd.DataFrame({"cpts": "SEG", "insee": ["38421", "38158", "38309"]})
    >>> draft = pd.DataFrame({"cpts": "SEG", "insee": ["38421", "38158", "38179"]})
    >>> page = map_html(comparison_map(load_communes("38"), today, draft))
    >>> "1 commune gagnée, 1 perdue, 0 changeant de CPTS" in page
    True
    """
    from ..analysis.inputs import prepare
    from ..geography import normalize_departements
    from .layers import build_comparison

    tolerance(simplify)
    if tiles is not None and (not isinstance(tiles, str) or not tiles.strip()):
        raise InputError(f"`tiles` was {tiles!r}; expected a URL template, a name or None")
    if not isinstance(communes, gpd.GeoDataFrame):
        raise InputError(f"`communes` was a {type(communes).__name__}; expected the "
                         "GeoDataFrame of cpts_geo.load_communes()")
    deps = normalize_departements(departements)
    scope = sorted(deps) if deps is not None else sorted(set(communes["departement"].astype(str)))
    states = [prepare(communes, t, as_of=as_of, statuses=statuses, whole_cpts=scope,
                      whole_departements=scope,
                      needed=("insee", "population", "departement", "geometry"))
              for t in (before, after)]
    layers = build_comparison(states[0], states[1], scope, simplify)
    return render_comparison(layers, title=title, offline=offline, tiles=tiles)
