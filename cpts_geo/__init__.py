"""How well is a French territory covered by CPTS.

Reference data (communes, populations, boundaries) come from a bundle shipped in the package,
so everything works offline; CPTS territories are read from the files planners keep.

>>> import cpts_geo
>>> communes = cpts_geo.load_communes("38")
>>> len(communes)
512
"""

from .codes import normalize_insee, resolve_codes, resolve_communes
from .coverage import (
    SIZE_CLASSES,
    commune_coverage,
    coverage,
    filter_territories,
    find_gaps,
    find_overlaps,
    size_class,
    territory_geometries,
)
from .errors import (
    AmbiguousCommuneError,
    CptsGeoError,
    CptsGeoWarning,
    DataSourceError,
    InputError,
    InvalidInseeCodeError,
    TerritoryError,
    UnknownCommuneError,
)
from .maps import coverage_figure, coverage_map, map_html, save_map, write_assets
from .reference import (
    bundle_info,
    load_communes,
    load_contiguity,
    load_departements,
    load_epci,
    load_former_communes,
    load_regions,
    population_years,
)
from .territories import STATUSES, normalize_status, read_territories

__version__ = "0.1.0"

__all__ = [
    "SIZE_CLASSES",
    "STATUSES",
    "AmbiguousCommuneError",
    "CptsGeoError",
    "CptsGeoWarning",
    "DataSourceError",
    "InputError",
    "InvalidInseeCodeError",
    "TerritoryError",
    "UnknownCommuneError",
    "bundle_info",
    "commune_coverage",
    "coverage",
    "coverage_figure",
    "coverage_map",
    "filter_territories",
    "find_gaps",
    "find_overlaps",
    "load_communes",
    "load_contiguity",
    "load_departements",
    "load_epci",
    "load_former_communes",
    "load_regions",
    "map_html",
    "normalize_insee",
    "normalize_status",
    "population_years",
    "read_territories",
    "resolve_codes",
    "resolve_communes",
    "save_map",
    "size_class",
    "territory_geometries",
    "write_assets",
]
