"""cpts_geo: how well is a French territory covered by CPTS?"""

from .errors import CptsGeoError, CptsGeoWarning
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

__version__ = "0.1.0"

__all__ = [
    "CptsGeoError",
    "CptsGeoWarning",
    "bundle_info",
    "load_communes",
    "load_contiguity",
    "load_departements",
    "load_epci",
    "load_former_communes",
    "load_regions",
    "population_years",
]
