"""geo.api.gouv.fr, the API Découpage administratif (Etalab), one request per département.

See :func:`cpts_geo.sources.online.fetch_communes` for the routes and property names.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd

from ..errors import DataSourceError
from .features import (
    _ALL_DEPARTEMENTS,
    _PLM_BY_DEPARTEMENT,
    _check_arrondissements,
    _check_complete,
    _check_departement,
    _check_duplicates,
    _check_insee,
    _commune_row,
    _feature_list,
    _finalize,
    _properties,
)
from .http import HttpClient, _progress_bar

__all__ = ["GEO_API_URL"]

#: Default base URL of the API Découpage administratif.
GEO_API_URL = "https://geo.api.gouv.fr"

# --- Field mappings: the ONE place where each service's property names are spelled -------------
#: geo.api.gouv.fr commune properties (``definition.yml`` / ``lib/communeHelpers.js``).
_GEO_API_FIELDS = {
    "insee": "code",
    "nom": "nom",
    "departement": "codeDepartement",
    "region": "codeRegion",
    "epci": "codeEpci",
    "population": "population",
}
_GEO_API_REQUIRED = ("insee", "nom", "departement", "region")
#: ADMIN EXPRESS COG ``commune`` properties on the Géoplateforme WFS

_GEO_API_FIELD_PARAM = ",".join(
    ["nom", "code", "codeDepartement", "codeRegion", "codeEpci", "population"]
)


def _geo_api_rows(
    features: list[dict[str, Any]], shown: str, departement: str
) -> list[dict[str, Any]]:
    rows = []
    for i, feature in enumerate(features):
        p = _properties(feature, _GEO_API_FIELDS, _GEO_API_REQUIRED, shown, i)
        insee = _check_insee(p["insee"], shown)
        dep = _check_departement(p["departement"], insee, shown)
        if dep != departement:
            raise DataSourceError(
                f"{shown}: asked for département {departement} but got commune {insee} of "
                f"département {dep}"
            )
        if not isinstance(p["nom"], str) or not p["nom"].strip():
            raise DataSourceError(f"{shown}: commune {insee} has no name")
        rows.append(_commune_row(p, feature, insee, dep, shown))
    return rows


def _fetch_geo_api(
    http: HttpClient,
    base: str,
    deps: tuple[str, ...] | None,
    *,
    arrondissements: bool,
    show: bool,
) -> gpd.GeoDataFrame:
    departements = deps if deps is not None else _ALL_DEPARTEMENTS
    common = {"fields": _GEO_API_FIELD_PARAM, "format": "geojson", "geometry": "contour"}
    plm = [d for d in departements if arrondissements and d in _PLM_BY_DEPARTEMENT]
    rows: list[dict[str, Any]] = []
    with _progress_bar(show, len(departements) + len(plm), "request", "geo.api.gouv.fr") as bar:
        for dep in departements:
            doc, shown = http.get_json(f"{base}/departements/{dep}/communes", common)
            dep_rows = _geo_api_rows(_feature_list(doc, shown), shown, dep)
            if not dep_rows:
                raise DataSourceError(f"{shown}: no commune at all for département {dep}")
            _check_duplicates((r["insee"] for r in dep_rows), shown)
            bar.update(1)
            if dep in plm:
                city = _PLM_BY_DEPARTEMENT[dep]
                params = {"codeDepartement": dep, "type": "arrondissement-municipal", **common}
                adoc, ashown = http.get_json(f"{base}/communes", params)
                arr_rows = _geo_api_rows(_feature_list(adoc, ashown), ashown, dep)
                _check_duplicates((r["insee"] for r in arr_rows), ashown)
                _check_arrondissements({city: [r["insee"] for r in arr_rows]}, [city], ashown)
                parent = next((r for r in dep_rows if r["insee"] == city), None)
                for r in arr_rows:
                    if r["epci"] is None and parent is not None:
                        r["epci"] = parent["epci"]
                dep_rows = [r for r in dep_rows if r["insee"] != city] + arr_rows
                bar.update(1)
            _check_complete(dep_rows, [dep], arrondissements=arrondissements, shown=shown)
            rows.extend(dep_rows)
    _check_duplicates((r["insee"] for r in rows), f"{base} (all départements)")
    source = (
        "API Découpage administratif, geo.api.gouv.fr (Etalab/DINUM): "
        f"{base}/departements/{{code}}/communes; municipal population of the COG in force"
    )
    attrs = {"source": source, "population_year": None, "census_year": None, "cog_year": None}
    return _finalize(rows, attrs, base)


