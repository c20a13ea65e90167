"""Reference data providers.

The bundle shipped in the package (offline, the default), and the geo.api.gouv.fr and IGN
Géoplateforme web services, with one HTTP client and one atomic cache.
"""

from .bundle import (
    bundle_info,
    load_contiguity,
    load_departements,
    load_epci,
    load_former_communes,
    load_published_figures,
    load_regions,
    population_years,
)
from .loaders import load_communes

__all__ = [
    "bundle_info",
    "load_communes",
    "load_contiguity",
    "load_departements",
    "load_epci",
    "load_former_communes",
    "load_published_figures",
    "load_regions",
    "population_years",
]
