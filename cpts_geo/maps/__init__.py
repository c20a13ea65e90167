"""Coverage maps.

Layer data (no folium), styles, offline Leaflet assets, the interactive maps (folium: coverage,
comparison of two states), the static figure (matplotlib) and the timeline chart (SVG or
matplotlib).

Importing :mod:`cpts_geo` does not import folium or matplotlib: they are imported when a map or a
figure is asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["comparison_map", "coverage_figure", "coverage_map", "map_html", "overview_map",
           "save_map", "timeline_figure", "write_assets"]


def __getattr__(name: str) -> Any:
    if name in ("comparison_map", "coverage_map", "map_html", "overview_map", "save_map"):
        from . import interactive

        return getattr(interactive, name)
    if name == "coverage_figure":
        from .figure import coverage_figure

        return coverage_figure
    if name == "timeline_figure":
        from .charts import timeline_figure

        return timeline_figure
    if name == "write_assets":
        from .assets import write_assets

        return write_assets
    raise AttributeError(f"module 'cpts_geo.maps' has no attribute {name!r}")
