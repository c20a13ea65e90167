"""How coverage maps look: colours, status styles, French labels, and safe text.

Shared by the interactive map (folium) and the static figure (matplotlib); imports neither.
"""

from __future__ import annotations

import colorsys
import html
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely

from ..analysis.aci import SIZE_CLASSES

__all__: list[str] = []

#: Qualitative palette for CPTS, most distinct hues first (greedy colouring rarely needs more
#: than five); no red, pink nor violet, which mark gaps and overlaps.
PALETTE: tuple[str, ...] = (
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
GAP_FILL, GAP_LINE = "#e31a1c", "#99000d"
OVERLAP_FILL, OVERLAP_LINE = "#6a3d9a", "#3f007d"
HOLE_FILL, HOLE_LINE = "#9e9e9e", "#424242"  # holes of the boundary data: grey, not a place
UNKNOWN_STATUS = "statut non renseigné"

#: Style of a CPTS by status: fill opacity, line weight, dash pattern (SVG ``stroke-dasharray``)
#: and a French description for the legend. The further the project, the more solid the fill.
STATUS_STYLE: dict[str, tuple[float, float, str | None, str]] = {
    "ACI signé": (0.7, 2.5, None, "remplissage plein, contour continu"),
    "projet de santé validé": (0.5, 2.0, "8 4", "remplissage moyen, contour en tirets"),
    "lettre d'intention validée": (0.35, 2.0, "3 4", "remplissage clair, contour en pointillés"),
    "pré-projet": (0.2, 1.5, "1 5", "remplissage très clair, contour pointillé espacé"),
    UNKNOWN_STATUS: (0.4, 1.5, "10 3 2 3", "contour en tirets-points"),
}
#: A proposition (a candidate territory, :func:`cpts_geo.propose_territories` or a planner's
#: draft) is no CPTS: it has its own layer, a black outline in long dashes and a light fill, and
#: it is not counted in the coverage rate of the map.
PROPOSAL_STATUS = "proposition"
PROPOSAL_LINE = "#1a1a1a"
STATUS_STYLE[PROPOSAL_STATUS] = (0.3, 2.5, "10 6",
                                 "territoire candidat à discuter, pas une CPTS : contour noir en "
                                 "longs tirets, non compté dans le taux")
STATUS_ORDER = (
    "ACI signé",
    "projet de santé validé",
    "lettre d'intention validée",
    "pré-projet",
    UNKNOWN_STATUS,
)

LAYER_CPTS = "Territoires CPTS"
LAYER_PROPOSALS = "Propositions de CPTS (à discuter)"
LAYER_GAPS = "Zones blanches (communes non couvertes)"
LAYER_OVERLAPS = "Chevauchements entre CPTS"
LAYER_COMMUNES = "Limites communales"
LAYER_DEPARTEMENTS = "Limites départementales"
LAYER_RATES = "Taux de couverture des départements"
LAYER_HOLES = "Trous des contours de référence"
LAYER_LABELS = "Noms des principales communes"

#: Classes of the overview map's département shading: (lower bound of the rate, colour), a
#: sequential yellow-green scale (ColorBrewer YlGn, colour-blind safe), never red nor violet.
RATE_CLASSES: tuple[tuple[float, str], ...] = (
    (0.0, "#ffffcc"),
    (0.2, "#d9f0a3"),
    (0.4, "#addd8e"),
    (0.6, "#78c679"),
    (0.8, "#31a354"),
    (0.9, "#006837"),
)


def rate_colour(rate: object) -> str:
    """Fill colour of a coverage rate on the overview map (grey when unknown).

    Examples
    --------
    >>> rate_colour(0.0), rate_colour(0.85), rate_colour(1.0), rate_colour(None)
    ('#ffffcc', '#31a354', '#006837', '#cccccc')
    """
    if rate is None or pd.isna(rate):
        return "#cccccc"
    colour = RATE_CLASSES[0][1]
    for low, c in RATE_CLASSES:
        if float(rate) >= low:  # type: ignore[arg-type]
            colour = c
    return colour

DECIMALS = 5  # about 1 m: a clean coverage stays clean (coverage_is_valid) at this precision
MAX_LISTED_CPTS = 25
MAX_LISTED_NAMES = 12


def esc(value: object) -> str:
    """HTML-escape a value coming from an input (quotes too: it may land in an attribute)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return html.escape(str(value), quote=True)


def js(obj: Any) -> str:
    """Compact JSON that is safe inside a ``<script>`` element (``</script>``, ``<!--``)."""
    return js_safe(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False))


def js_safe(text: str) -> str:
    """JSON text made safe inside a ``<script>`` element (see :func:`js`)."""
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def int_or_none(value: object) -> int | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value))  # type: ignore[arg-type]


def fr_int(value: float | int | None) -> str:
    """``1271166`` -> ``"1 271 166"`` (narrow no-break spaces, as French typography wants)."""
    if value is None or pd.isna(value):
        return "n.d."
    return f"{round(float(value)):,}".replace(",", "\u202f")


def fr_num(value: float, digits: int) -> str:
    """``16.73`` -> ``"16,7"`` (decimal comma, narrow no-break spaces between thousands).

    Examples
    --------
    >>> fr_num(16.73, 1), fr_num(1234.5, 1)
    ('16,7', '1\u202f234,5')
    """
    return f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",")


def size_classes_text() -> str:
    """The ACI size classes in French: ``"1 : moins de 40 000 habitants ; 2 : ..."``."""
    parts = []
    for c in SIZE_CLASSES:
        if c.low == 0:
            span = f"moins de {fr_int(c.high)}"
        elif np.isinf(c.high):
            span = f"plus de {fr_int(c.low)}"
        else:
            span = f"{fr_int(c.low)} à {fr_int(c.high)}"
        parts.append(f"{c.taille} : {span} habitants")
    return " ; ".join(parts)


def fr_pct(rate: float | None) -> str:
    if rate is None or pd.isna(rate):
        return "n.d."
    return f"{100 * rate:.1f}".replace(".", ",") + "\u202f%"


def size_label(cls: object) -> str:
    if cls is None or pd.isna(cls):
        return "n.d."
    for c in SIZE_CLASSES:
        if c.taille == int(cls):  # type: ignore[call-overload]
            if c.low == 0:
                return f"taille {c.taille} (< {fr_int(c.high)} hab.)"
            if np.isinf(c.high):
                return f"taille {c.taille} (> {fr_int(c.low)} hab.)"
            return f"taille {c.taille} ({fr_int(c.low)} à {fr_int(c.high)} hab.)"
    return f"taille {cls}"



def colour_graph(geoms: Sequence[Any], keys: Sequence[str]) -> list[int]:
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
        free = [c for c in range(len(PALETTE)) if c not in used]
        if free:
            c = min(free, key=lambda k: (uses.get(k, 0), k))
        else:  # more neighbours than colours: go past the palette (still distinct)
            c = len(PALETTE)
            while c in used:
                c += 1
        colour[i] = c
        uses[c] = uses.get(c, 0) + 1
    return colour


def palette_colour(index: int) -> str:
    if index < len(PALETTE):
        return PALETTE[index]
    # more colours than the palette (never seen on real maps): spread hues by the golden angle,
    # avoiding the reds and violets of gaps and overlaps
    hue = 0.08 + ((index - len(PALETTE)) * 0.381966) % 0.6  # between orange and blue
    r, g, b = colorsys.hls_to_rgb(hue, 0.5, 0.55)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def darker(hex_colour: str, factor: float = 0.65) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"#{round(r * factor):02x}{round(g * factor):02x}{round(b * factor):02x}"


def plural(n: int, word: str) -> str:
    return f"{fr_int(n)} {word}{'s' if n > 1 else ''}"


def swatch(fill: str | None, line: str, opacity: float, weight: float,
            dash: str | None) -> str:
    fill_attr = (f'fill="{fill}" fill-opacity="{opacity}"' if fill else 'fill="none"')
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        '<svg class="cpts-geo-swatch" width="30" height="16" aria-hidden="true">'
        f'<rect x="1.5" y="1.5" width="27" height="13" {fill_attr} stroke="{line}" '
        f'stroke-width="{min(weight, 2.5)}"{dash_attr}/></svg>'
    )


def status_of(value: object) -> str:
    if value is None or pd.isna(value):
        return UNKNOWN_STATUS
    return str(value) if str(value) in STATUS_STYLE else UNKNOWN_STATUS


