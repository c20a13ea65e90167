"""How well is a French territory covered by CPTS.

Reference data (communes, populations, boundaries) come from a bundle shipped in the package,
so everything works offline; CPTS territories are read from the files planners keep.

The package is layered, each layer importing only from the ones below it: ``errors``,
``geography`` and ``typing``; ``codes`` and ``membership``; ``sources`` (the bundle, web
services) and ``io`` (planners' files); ``analysis`` (coverage, gaps, overlaps, comparisons);
``maps`` and ``publishing``; ``cli``. Importing the package does not import folium, matplotlib or
jinja2: maps and the site load them when asked for.

>>> import cpts_geo
>>> communes = cpts_geo.load_communes("38")
>>> len(communes)
512
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._about import __version__ as __version__
from ._about import show_versions
from .analysis.aci import SIZE_CLASSES, size_class
from .analysis.changes import Comparison, compare, coverage_timeline
from .analysis.claims import reconcile
from .analysis.diagnostics import find_gaps, find_overlaps, territory_geometries
from .analysis.funding import aci_funding
from .analysis.graph import ContiguityGraph
from .analysis.inputs import filter_territories
from .analysis.proposals import Proposals, propose_territories
from .analysis.rates import commune_coverage, coverage, cpts_table
from .codes import normalize_insee, resolve_codes, resolve_communes
from .errors import (
    AmbiguousCommuneError,
    CptsGeoError,
    CptsGeoWarning,
    DataSourceError,
    InputError,
    InvalidInseeCodeError,
    PublishError,
    ResourceLimitError,
    TerritoryError,
    UnknownCommuneError,
)
from .geography import normalize_departements
from .io.excel import readable
from .io.readers import outline_fractions, read_territories
from .membership import STATUSES, normalize_status
from .sources.bundle import (
    bundle_info,
    load_contiguity,
    load_departements,
    load_epci,
    load_former_communes,
    load_holes,
    load_published_figures,
    load_regions,
    population_years,
)
from .sources.loaders import load_communes

if TYPE_CHECKING:
    from .maps.assets import write_assets
    from .maps.charts import timeline_figure
    from .maps.figure import coverage_figure
    from .maps.interactive import comparison_map, coverage_map, map_html, overview_map, save_map
    from .publishing.site import PublishResult, publish

_LAZY = {
    "coverage_map": "cpts_geo.maps.interactive",
    "comparison_map": "cpts_geo.maps.interactive",
    "map_html": "cpts_geo.maps.interactive",
    "save_map": "cpts_geo.maps.interactive",
    "overview_map": "cpts_geo.maps.interactive",
    "coverage_figure": "cpts_geo.maps.figure",
    "timeline_figure": "cpts_geo.maps.charts",
    "write_assets": "cpts_geo.maps.assets",
    "publish": "cpts_geo.publishing.site",
    "PublishResult": "cpts_geo.publishing.site",
}


def __getattr__(name: str) -> Any:
    """Import the map and site functions (folium, matplotlib, jinja2) on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cpts_geo' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "SIZE_CLASSES",
    "STATUSES",
    "AmbiguousCommuneError",
    "Comparison",
    "ContiguityGraph",
    "CptsGeoError",
    "CptsGeoWarning",
    "DataSourceError",
    "InputError",
    "InvalidInseeCodeError",
    "Proposals",
    "PublishError",
    "PublishResult",
    "ResourceLimitError",
    "TerritoryError",
    "UnknownCommuneError",
    "aci_funding",
    "bundle_info",
    "commune_coverage",
    "compare",
    "comparison_map",
    "coverage",
    "coverage_figure",
    "coverage_map",
    "coverage_timeline",
    "cpts_table",
    "filter_territories",
    "find_gaps",
    "find_overlaps",
    "load_communes",
    "load_contiguity",
    "load_departements",
    "load_epci",
    "load_former_communes",
    "load_holes",
    "load_published_figures",
    "load_regions",
    "map_html",
    "normalize_departements",
    "normalize_insee",
    "normalize_status",
    "outline_fractions",
    "overview_map",
    "population_years",
    "propose_territories",
    "publish",
    "read_territories",
    "readable",
    "reconcile",
    "resolve_codes",
    "resolve_communes",
    "save_map",
    "show_versions",
    "size_class",
    "territory_geometries",
    "timeline_figure",
    "write_assets",
]
