"""Coverage maps.

Layer data (no folium), styles, offline Leaflet assets, the interactive map (folium) and the
static figure (matplotlib).

Importing :mod:`cpts_geo` does not import folium or matplotlib: they are imported when a map or a
figure is asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["coverage_figure", "coverage_map", "map_html", "overview_map", "save_map",
           "write_assets"]


def __getattr__(name: str) -> Any:
    if name in ("coverage_map", "map_html", "overview_map", "save_map"):
        from . import interactive

        return getattr(interactive, name)
    if name == "coverage_figure":
        from .figure import coverage_figure

        return coverage_figure
    if name == "write_assets":
        from .assets import write_assets

        return write_assets
    raise AttributeError(f"module 'cpts_geo.maps' has no attribute {name!r}")
