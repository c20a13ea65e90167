"""The IGN Géoplateforme WFS (GeoServer), ADMIN EXPRESS COG latest edition, paged.

See :func:`cpts_geo.sources.online.fetch_communes` for the feature types and property names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import geopandas as gpd
from tqdm.auto import tqdm

from ..errors import DataSourceError
from ..geography import arrondissements as plm_cities
from .features import (
    _ALL_DEPARTEMENTS,
    _COM_PREFIXES,
    _SLACK_MIN,
    _check_arrondissements,
    _check_complete,
    _check_departement,
    _check_duplicates,
    _check_insee,
    _check_population,
    _commune_row,
    _expected_max,
    _feature_list,
    _finalize,
    _geometry,
    _properties,
)
from .http import HttpClient, _progress_bar

__all__ = ["IGN_WFS_URL"]

#: Default endpoint of the IGN Géoplateforme WFS.
IGN_WFS_URL = "https://data.geopf.fr/wfs/ows"

_IGN_COMMUNE_TYPENAME = "ADMINEXPRESS-COG.LATEST:commune"
_IGN_ARRONDISSEMENT_TYPENAME = "ADMINEXPRESS-COG.LATEST:arrondissement_municipal"

#: WFS page size (``COUNT``).
_WFS_PAGE_SIZE = 1000
#: Features of overseas collectivities (outside the scope) a national answer may hold.
_COM_ALLOWANCE = 200

#: (schema ``ADMINEXPRESS-COG.LATEST/commune`` of ``ignfab/gpf-schema-store``).
_IGN_COMMUNE_FIELDS = {
    "insee": "code_insee",
    "nom": "nom_officiel",
    "departement": "code_insee_du_departement",
    "region": "code_insee_de_la_region",
    "epci": "codes_siren_des_epci",
    "population": "population",
    "census_date": "date_du_recensement",
}
_IGN_COMMUNE_REQUIRED = ("insee", "nom", "departement", "region", "epci", "population")
#: ADMIN EXPRESS COG ``arrondissement_municipal`` properties (same schema store).
_IGN_ARRONDISSEMENT_FIELDS = {
    "insee": "code_insee",
    "nom": "nom_officiel",
    "parent": "code_insee_de_la_commune_de_rattach",
    "population": "population",
}
_IGN_ARRONDISSEMENT_REQUIRED = ("insee", "nom", "parent", "population")


def _number_matched(doc: dict[str, Any]) -> int | None:
    for key in ("numberMatched", "totalFeatures"):
        value = doc.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _wfs_pages(
    http: HttpClient,
    base: str,
    typename: str,
    cql_filter: str | None,
    bar: tqdm,
    most: int,
) -> tuple[list[dict[str, Any]], str]:
    """Fetch every page of a WFS GetFeature; check the count against ``numberMatched``.

    ``most`` is the largest plausible number of features (the bundle's count for the area asked
    for, plus the tolerance): a server announcing or sending more is refused, so that a hostile
    or broken server cannot make the paging go on for ever.
    """
    params: dict[str, str | int] = {
        "SERVICE": "WFS",
        "VERSION": "2.0.0",
        "REQUEST": "GetFeature",
        "TYPENAMES": typename,
        "OUTPUTFORMAT": "application/json",
        "SRSNAME": "EPSG:4326",
        "SORTBY": "code_insee",
        "COUNT": _WFS_PAGE_SIZE,
    }
    if cql_filter:
        params["CQL_FILTER"] = cql_filter
    features: list[dict[str, Any]] = []
    matched: int | None = None
    first_shown = ""
    seen_ids: set[str] = set()
    start = 0
    while True:
        doc, shown = http.get_json(base, {**params, "STARTINDEX": start})
        first_shown = first_shown or shown
        page = _feature_list(doc, shown)
        returned = doc.get("numberReturned")
        if isinstance(returned, int) and returned != len(page):
            raise DataSourceError(
                f"{shown}: numberReturned says {returned} features but the page holds {len(page)}"
            )
        if matched is None:
            matched = _number_matched(doc)
            if matched is not None and matched > most:
                raise DataSourceError(
                    f"{shown}: numberMatched announces {matched:,} features where at most "
                    f"{most:,} are plausible for the area asked for (the bundle's count plus "
                    "the tolerance for merged or created communes)"
                )
            if matched is not None:
                bar.total = (bar.total or 0) + matched
                bar.refresh()
        ids = {str(f.get("id", "")) + repr(f["properties"].get("code_insee")) for f in page}
        if page and ids <= seen_ids:
            raise DataSourceError(
                f"{shown}: the page at STARTINDEX={start} repeats features already received "
                "(the server ignores paging)"
            )
        seen_ids |= ids
        features.extend(page)
        if len(features) > most:
            raise DataSourceError(
                f"{shown}: the server sent more than {most:,} features, more than are plausible "
                "for the area asked for (the bundle's count plus the tolerance for merged or "
                "created communes)"
            )
        bar.update(len(page))
        if not page:
            break
        if matched is not None:
            if len(features) >= matched:
                break
        elif len(page) < _WFS_PAGE_SIZE:
            break
        start += len(page)
    if matched is not None and len(features) != matched:
        raise DataSourceError(
            f"{first_shown}: received {len(features)} features but numberMatched announced "
            f"{matched}"
        )
    return features, first_shown


def _cql_in(field: str, values: Iterable[str]) -> str:
    quoted = ",".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{field} IN ({quoted})"


def _census_year(values: Iterable[object]) -> int | None:
    years: Counter[int] = Counter()
    for value in values:
        if isinstance(value, str) and re.match(r"^\d{4}", value):
            years[int(value[:4])] += 1
    return years.most_common(1)[0][0] if years else None


def _fetch_ign(
    http: HttpClient,
    base: str,
    deps: tuple[str, ...] | None,
    *,
    arrondissements: bool,
    show: bool,
) -> gpd.GeoDataFrame:
    dep_filter = None
    if deps is not None:
        dep_filter = _cql_in(_IGN_COMMUNE_FIELDS["departement"], deps)
    scope = deps if deps is not None else _ALL_DEPARTEMENTS
    cities = [c for c in plm_cities() if arrondissements and c[:2] in scope]

    # the national layer may also hold the communes of overseas collectivities, left out below
    most = _expected_max(scope, arrondissements=False) + (_COM_ALLOWANCE if deps is None else 0)
    with _progress_bar(show, None, "commune", "IGN Géoplateforme") as bar:
        features, shown = _wfs_pages(http, base, _IGN_COMMUNE_TYPENAME, dep_filter, bar, most)
        arr_features: list[dict[str, Any]] = []
        arr_shown = ""
        if cities:
            arr_filter = _cql_in(_IGN_ARRONDISSEMENT_FIELDS["parent"], cities)
            arr_most = sum(len(plm_cities()[c]) for c in cities) + _SLACK_MIN
            arr_features, arr_shown = _wfs_pages(
                http, base, _IGN_ARRONDISSEMENT_TYPENAME, arr_filter, bar, arr_most
            )

    rows: list[dict[str, Any]] = []
    census_dates = []
    for i, feature in enumerate(features):
        p = _properties(feature, _IGN_COMMUNE_FIELDS, _IGN_COMMUNE_REQUIRED, shown, i)
        insee = _check_insee(p["insee"], shown)
        if insee.startswith(_COM_PREFIXES):
            continue  # collectivités d'outre-mer: outside the scope (see _COM_PREFIXES)
        dep = _check_departement(p["departement"], insee, shown)
        if deps is not None and dep not in deps:
            raise DataSourceError(
                f"{shown}: commune {insee} of département {dep} was not asked for (the server "
                "ignored CQL_FILTER)"
            )
        if not isinstance(p["nom"], str) or not p["nom"].strip():
            raise DataSourceError(f"{shown}: commune {insee} has no name")
        census_dates.append(p["census_date"])
        rows.append(_commune_row(p, feature, insee, dep, shown))
    _check_duplicates((r["insee"] for r in rows), shown)
    present = {r["departement"] for r in rows}
    absent = [d for d in scope if d not in present]
    if absent:
        raise DataSourceError(
            f"{shown}: no commune at all for département{'s' if len(absent) > 1 else ''} "
            f"{', '.join(absent)}: the answer is incomplete"
        )

    if cities:
        by_code = {r["insee"]: r for r in rows}
        found: dict[str, list[str]] = {}
        arr_rows = []
        for i, feature in enumerate(arr_features):
            p = _properties(
                feature, _IGN_ARRONDISSEMENT_FIELDS, _IGN_ARRONDISSEMENT_REQUIRED, arr_shown, i
            )
            insee = _check_insee(p["insee"], arr_shown)
            parent = by_code.get(p["parent"]) if isinstance(p["parent"], str) else None
            if parent is None or p["parent"] not in cities:
                raise DataSourceError(
                    f"{arr_shown}: arrondissement {insee} belongs to {p['parent']!r}, which is "
                    "not one of the cities asked for"
                )
            if not isinstance(p["nom"], str) or not p["nom"].strip():
                raise DataSourceError(f"{arr_shown}: arrondissement {insee} has no name")
            found.setdefault(p["parent"], []).append(insee)
            arr_rows.append(
                {
                    "insee": insee,
                    "nom": p["nom"].strip(),
                    "departement": parent["departement"],
                    "region": parent["region"],
                    "epci": parent["epci"],
                    "population": _check_population(p["population"], insee, arr_shown),
                    "geometry": _geometry(feature, insee, arr_shown),
                }
            )
        _check_duplicates((r["insee"] for r in arr_rows), arr_shown)
        _check_arrondissements(found, cities, arr_shown)
        rows = [r for r in rows if r["insee"] not in cities] + arr_rows
    _check_complete(rows, scope, arrondissements=arrondissements, shown=shown)

    census = _census_year(census_dates)
    attrs = {
        "source": (
            "IGN Géoplateforme WFS, ADMIN EXPRESS COG latest edition "
            f"({_IGN_COMMUNE_TYPENAME}): {base}"
        ),
        "population_year": None if census is None else census + 3,
        "census_year": census,
        "cog_year": None,
    }
    return _finalize(rows, attrs, shown)


