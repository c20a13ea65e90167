"""Tests of cpts_geo.online against a real HTTP server on 127.0.0.1 (pytest-httpserver).

No test reaches the internet: every call passes ``base_url`` pointing at the local server. The
responses follow the documented formats: geo.api.gouv.fr (``datagouv/api-geo``: properties
``code``, ``nom``, ``codeDepartement``, ``codeRegion``, ``codeEpci``, ``population``; Polygon
contours) and the Géoplateforme WFS (GeoServer GeoJSON with ``numberMatched``/``numberReturned``,
ADMIN EXPRESS COG properties ``code_insee``, ``nom_officiel``...; MultiPolygon ``geometrie``).
Answers are complete (every commune of the département, from the bundle, as the completeness
check requires); geometries are small squares; codes, names, EPCI and populations are real.
"""

from __future__ import annotations

import email.utils
import functools
import gzip
import json
import re
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import requests
from pytest_httpserver import HTTPServer
from shapely.geometry import MultiPolygon
from werkzeug import Request, Response

import cpts_geo
from cpts_geo.errors import CptsGeoWarning, DataSourceError, InputError, ResourceLimitError
from cpts_geo.geography import departements
from cpts_geo.sources import cache as cache_module
from cpts_geo.sources import features, geoapi, http, ign, online

COLUMNS = ["insee", "nom", "departement", "region", "epci", "population", "geometry"]
Row = tuple[str, str, str | None, int | None]


@functools.cache
def _bundle_rows_by_departement(arrondissements: bool) -> dict[str, tuple[Row, ...]]:
    gdf = cpts_geo.load_communes(arrondissements=arrondissements).drop(columns="geometry")
    out: dict[str, list[Row]] = {}
    for r in gdf.itertuples():
        out.setdefault(r.departement, []).append(
            (r.insee, r.nom, None if pd.isna(r.epci) else r.epci,
             None if pd.isna(r.population) else int(r.population)))
    return {dep: tuple(rows) for dep, rows in out.items()}


def bundle_rows(dep: str, arrondissements: bool = False) -> tuple[Row, ...]:
    """Every unit of a département as the bundle has it (COG 2026): a complete answer.

    The services are checked for completeness against the bundle, so the local server serves
    complete answers: real codes, names, EPCI and populations, with small squares as geometries.
    """
    return _bundle_rows_by_departement(arrondissements)[dep]


def value_of(rows: Any, insee: str, field: int) -> Any:
    return next(r[field] for r in rows if r[0] == insee)


# (insee, nom, epci or None, population or None): complete départements from the bundle
LOIRE = list(bundle_rows("42"))  # 320 communes
FINISTERE = list(bundle_rows("29"))  # 277 communes, two of them (islands) outside any EPCI
RHONE = list(bundle_rows("69"))  # 267 communes, Lyon (69123) among them
LYON_ARRONDISSEMENTS = [  # the API sends no codeEpci for arrondissements
    (insee, nom, None, pop) for insee, nom, _, pop in bundle_rows("69", True)
    if insee.startswith("6938")
]
PARIS_POPULATION = value_of(bundle_rows("75"), "75056", 3)
PARIS = [("75056", "Paris", "200054781/200054781", PARIS_POPULATION)]
PARIS_ARRONDISSEMENTS = [
    (insee, nom, None, pop) for insee, nom, _, pop in bundle_rows("75", True)
]


def region_of(dep: str) -> str:
    return departements()[dep].region if dep in departements() else "NR"


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def _server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def httpserver(_server: HTTPServer) -> Iterator[HTTPServer]:
    """pytest-httpserver on 127.0.0.1, threaded (a sleeping handler must not block retries)."""
    yield _server
    try:
        _server.check_assertions()
        _server.check_handler_errors()
    finally:
        _server.clear()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[float]:
    """Never touch the user's cache; never really sleep between attempts."""
    monkeypatch.setenv("CPTS_GEO_CACHE_DIR", str(tmp_path / "cache"))
    sleeps: list[float] = []
    monkeypatch.setattr(http, "_sleep", sleeps.append)
    monkeypatch.setattr(http, "_BACKOFF_BASE", 0.001)
    return sleeps


@pytest.fixture
def sleeps(_isolated: list[float]) -> list[float]:
    return _isolated


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def cache_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ------------------------------------------------------------------------------------------------
# Documented formats
# ------------------------------------------------------------------------------------------------
def square(i: int, x0: float = 4.0, y0: float = 45.0, size: float = 0.01) -> list[Any]:
    x, y = x0 + (i % 50) * size * 1.5, y0 + (i // 50) * size * 1.5
    return [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]


def geo_api_feature(
    row: tuple[str, str, str | None, int | None], i: int, dep: str | None = None
) -> dict[str, Any]:
    insee, nom, epci, population = row
    dep = dep or (insee[:3] if insee.startswith("97") else insee[:2])
    props: dict[str, Any] = {
        "nom": nom,
        "code": insee,
        "codeDepartement": dep,
        "codeRegion": region_of(dep),
    }
    if epci is not None:  # the API omits codeEpci for communes outside any EPCI
        props["codeEpci"] = epci
    if population is not None:
        props["population"] = population
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": square(i)}}


def geo_api_fc(rows: list[tuple[str, str, str | None, int | None]]) -> dict[str, Any]:
    return {"type": "FeatureCollection",
            "features": [geo_api_feature(r, i) for i, r in enumerate(rows)]}


def ign_commune(row: tuple[str, str, str | None, int | None], i: int) -> dict[str, Any]:
    insee, nom, epci, population = row
    dep = insee[:3] if insee.startswith("97") else insee[:2]
    return {
        "type": "Feature",
        "id": f"commune.{1000 + i}",
        "geometry": {"type": "MultiPolygon", "coordinates": [square(i)]},
        "geometry_name": "geometrie",
        "properties": {
            "cleabs": f"COMMUNE_0000000009{i:06d}",
            "nom_officiel": nom,
            "nom_officiel_en_majuscules": nom.upper(),
            "statut": "Commune simple",
            "code_insee": insee,
            "population": population,
            "date_du_recensement": "2021-01-01",
            "organisme_recenseur": "INSEE",
            "code_insee_du_canton": f"{dep}01",
            "code_insee_de_l_arrondissement": f"{dep}1",
            "code_insee_du_departement": dep,
            "code_insee_de_la_region": region_of(dep),
            "code_siren": f"21{insee.replace('A', '0').replace('B', '0')}00",
            "codes_siren_des_epci": epci if epci is not None else "NR",
            "code_postal": insee,
            "superficie_cadastrale": 1000 + i,
        },
    }


def ign_arrondissement(
    row: tuple[str, str, str | None, int | None], i: int, parent: str
) -> dict[str, Any]:
    insee, nom, _, population = row
    return {
        "type": "Feature",
        "id": f"arrondissement_municipal.{i + 1}",
        "geometry": {"type": "MultiPolygon", "coordinates": [square(i, y0=46.0)]},
        "geometry_name": "geometrie",
        "properties": {
            "cleabs": f"ARR_MUNI0000000009{i:06d}",
            "nom_officiel": nom,
            "nom_officiel_en_majuscules": nom.upper(),
            "numero_de_l_arrondissement_municipal": insee[-2:],
            "code_insee": insee,
            "code_insee_de_la_commune_de_rattach": parent,
            "code_postal": insee,
            "population": population,
        },
    }


def _cql_values(cql: str) -> set[str] | None:
    match = re.fullmatch(r"(\w+) IN \((.*)\)", cql.strip())
    return None if match is None else set(re.findall(r"'([^']*)'", match.group(2)))


def wfs_handler(
    layers: dict[str, list[dict[str, Any]]], *, number_matched: int | None = None
):
    """A GeoServer-like GetFeature: TYPENAMES, CQL_FILTER ``field IN (...)``, COUNT/STARTINDEX."""

    def handler(request: Request) -> Response:
        args = request.args
        assert args["SERVICE"] == "WFS" and args["REQUEST"] == "GetFeature"
        assert args["OUTPUTFORMAT"] == "application/json" and args["SRSNAME"] == "EPSG:4326"
        features = layers[args["TYPENAMES"]]
        if "CQL_FILTER" in args:
            field = args["CQL_FILTER"].split()[0]
            values = _cql_values(args["CQL_FILTER"])
            features = [f for f in features if f["properties"][field] in values]
        start, count = int(args["STARTINDEX"]), int(args["COUNT"])
        page = features[start:start + count]
        body = {
            "type": "FeatureCollection",
            "features": page,
            "totalFeatures": len(features),
            "numberMatched": len(features) if number_matched is None else number_matched,
            "numberReturned": len(page),
            "timeStamp": "2026-03-02T10:54:41.070Z",
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4326"}},
        }
        return Response(json.dumps(body), content_type="application/json;charset=UTF-8")

    return handler


def serve_loire(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_json(geo_api_fc(LOIRE))


def fetch(httpserver: HTTPServer, *args: Any, **kwargs: Any) -> gpd.GeoDataFrame:
    kwargs.setdefault("base_url", httpserver.url_for("/"))
    kwargs.setdefault("timeout", 2.0)
    kwargs.setdefault("retries", 2)
    return online.fetch_communes(*args, **kwargs)


# ------------------------------------------------------------------------------------------------
# geo.api.gouv.fr
# ------------------------------------------------------------------------------------------------
def test_geo_api_one_departement(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    gdf = fetch(httpserver, "42")

    assert list(gdf.columns) == COLUMNS
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf["insee"]) == sorted(r[0] for r in LOIRE)
    assert gdf.set_index("insee").loc["42110", "nom"] == "L'Horme"
    assert set(gdf["departement"]) == {"42"} and set(gdf["region"]) == {"84"}
    assert gdf.set_index("insee").loc["42218", "epci"] == "244200770"
    assert str(gdf["population"].dtype) == "Int64"
    assert gdf.set_index("insee").loc["42218", "population"] == value_of(LOIRE, "42218", 3)
    assert all(isinstance(g, MultiPolygon) and g.is_valid for g in gdf.geometry)
    assert {"source", "population_year", "retrieved"} <= set(gdf.attrs)
    assert "geo.api.gouv.fr" in gdf.attrs["source"] and httpserver.url_for("/") in (
        gdf.attrs["source"] + "/"
    )
    assert gdf.attrs["population_year"] is None
    datetime.fromisoformat(gdf.attrs["retrieved"])

    (request, _), = httpserver.log
    assert request.path == "/departements/42/communes"
    assert request.args["format"] == "geojson" and request.args["geometry"] == "contour"
    assert set(request.args["fields"].split(",")) >= {
        "nom", "code", "codeDepartement", "codeRegion", "codeEpci", "population"
    }
    assert len(cache_files(cache)) == 1 and cache_files(cache)[0].endswith(".parquet")


def test_geo_api_missing_epci_and_population_stay_missing(httpserver: HTTPServer) -> None:
    rows = [(c, n, e, None if c == "29232" else p) for c, n, e, p in FINISTERE]  # Quimper
    httpserver.expect_request("/departements/29/communes").respond_with_json(geo_api_fc(rows))
    gdf = fetch(httpserver, 29).set_index("insee")
    assert pd.isna(gdf.loc["29155", "epci"]) and pd.isna(gdf.loc["29083", "epci"])
    assert gdf.loc["29155", "population"] == value_of(FINISTERE, "29155", 3)
    assert gdf.loc["29232", "population"] is pd.NA
    assert gdf.loc["29155", "nom"] == "Ouessant"


def test_geo_api_arrondissements(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/departements/69/communes").respond_with_json(geo_api_fc(RHONE))
    httpserver.expect_request(
        "/communes", query_string={"codeDepartement": "69", "type": "arrondissement-municipal",
                                   "fields": geoapi._GEO_API_FIELD_PARAM, "format": "geojson",
                                   "geometry": "contour"}
    ).respond_with_json(geo_api_fc(LYON_ARRONDISSEMENTS))

    gdf = fetch(httpserver, "69", arrondissements=True).set_index("insee")

    assert "69123" not in gdf.index
    assert [c for c in gdf.index if c.startswith("6938")] == [f"6938{i}" for i in range(1, 10)]
    assert gdf.loc["69381", "nom"] == "Lyon 1er Arrondissement"
    assert gdf.loc["69381", "epci"] == "200046977"  # inherited from Lyon
    assert gdf.loc["69381", "departement"] == "69" and gdf.loc["69381", "region"] == "84"
    assert len(gdf) == len(RHONE) - 1 + 9 == departements()["69"].n_units_arrondissements


def test_geo_api_incomplete_arrondissements(httpserver: HTTPServer, cache: Path) -> None:
    httpserver.expect_request("/departements/69/communes").respond_with_json(geo_api_fc(RHONE))
    httpserver.expect_request("/communes").respond_with_json(geo_api_fc(LYON_ARRONDISSEMENTS[:8]))
    with pytest.raises(DataSourceError, match=r"arrondissements for 69123.*missing 69389"):
        fetch(httpserver, "69", arrondissements=True)
    assert cache_files(cache) == []


def serve_corsica(httpserver: HTTPServer) -> None:
    for dep in ("2A", "2B"):
        httpserver.expect_request(f"/departements/{dep}/communes").respond_with_json(
            geo_api_fc(list(bundle_rows(dep))))


def test_geo_api_region_is_a_union_of_departements(httpserver: HTTPServer) -> None:
    serve_corsica(httpserver)
    serve_loire(httpserver)
    gdf = fetch(httpserver, ["42"], regions="94")
    assert set(gdf["departement"]) == {"2A", "2B", "42"}
    assert sorted(r.path for r, _ in httpserver.log) == [
        "/departements/2A/communes", "/departements/2B/communes", "/departements/42/communes"
    ]


@pytest.mark.slow
def test_geo_api_national_asks_every_departement(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        dep = request.path.split("/")[2]
        return Response(json.dumps(geo_api_fc(list(bundle_rows(dep)))),
                        content_type="application/json")

    httpserver.expect_request(re.compile(r"^/departements/\w+/communes$")).respond_with_handler(
        handler)
    gdf = fetch(httpserver, progress=True)
    assert len(httpserver.log) == 101
    assert len(gdf) == 34_875 == sum(d.n_communes for d in departements().values())
    assert {"01", "2A", "2B", "95", "971", "976"} <= set(gdf["departement"])
    assert "975" not in set(gdf["departement"])


def test_geo_api_wrong_departement_in_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/departements/43/communes").respond_with_json(geo_api_fc(LOIRE))
    with pytest.raises(DataSourceError, match=r"asked for département 43 but got commune 42"):
        fetch(httpserver, "43")


def test_geo_api_empty_departement(httpserver: HTTPServer, cache: Path) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_json(geo_api_fc([]))
    with pytest.raises(DataSourceError, match=r"no commune at all for département 42"):
        fetch(httpserver, "42")
    assert cache_files(cache) == []


# ------------------------------------------------------------------------------------------------
# IGN Géoplateforme WFS
# ------------------------------------------------------------------------------------------------
def national_ign_communes() -> list[dict[str, Any]]:
    rows = [r for dep in features._ALL_DEPARTEMENTS for r in bundle_rows(dep)]
    rows = [("75056", "Paris", "200054781/200057867", PARIS_POPULATION) if r[0] == "75056"
            else r for r in rows]
    feats = [ign_commune(r, i) for i, r in enumerate(rows)]
    spm = ign_commune(("97502", "Saint-Pierre", None, 5600), 300)
    spm["properties"]["code_insee_du_departement"] = "NR"  # COM: outside ADMIN EXPRESS COG
    spm["properties"]["code_insee_de_la_region"] = "NR"
    return [*feats, spm]


@pytest.mark.slow
def test_ign_national_paging(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ign, "_WFS_PAGE_SIZE", 10_000)
    communes = national_ign_communes()
    httpserver.expect_request("/wfs/ows").respond_with_handler(
        wfs_handler({ign._IGN_COMMUNE_TYPENAME: communes}))

    gdf = fetch(httpserver, source="ign", base_url=httpserver.url_for("/wfs/ows"))

    starts = [int(r.args["STARTINDEX"]) for r, _ in httpserver.log]
    assert starts == [0, 10_000, 20_000, 30_000]  # 34,876 features in pages of 10,000
    assert all("CQL_FILTER" not in r.args for r, _ in httpserver.log)
    assert len(gdf) == 34_875  # Saint-Pierre (COM) left out
    assert gdf.set_index("insee").loc["75056", "epci"] == "200054781"  # MGP, not the EPT
    assert gdf.attrs["census_year"] == 2021 and gdf.attrs["population_year"] == 2024
    assert "data.geopf.fr" not in gdf.attrs["source"]  # names the server actually used
    assert "ADMINEXPRESS-COG.LATEST:commune" in gdf.attrs["source"]


def test_ign_paging_without_number_matched(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ign, "_WFS_PAGE_SIZE", 100)
    feats = [ign_commune(r, i) for i, r in enumerate(LOIRE)]

    def handler(request: Request) -> Response:
        start = int(request.args["STARTINDEX"])
        page = feats[start:start + int(request.args["COUNT"])]
        return Response(json.dumps({"type": "FeatureCollection", "features": page}),
                        content_type="application/json")

    httpserver.expect_request("/wfs/ows").respond_with_handler(handler)
    gdf = fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))
    assert len(gdf) == len(LOIRE) == 320
    # 320 features in pages of 100: the short page ends the paging
    assert [int(r.args["STARTINDEX"]) for r, _ in httpserver.log] == [0, 100, 200, 300]


def test_ign_server_ignoring_paging(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ign, "_WFS_PAGE_SIZE", 3)
    feats = [ign_commune(r, i) for i, r in enumerate(LOIRE)]

    def handler(request: Request) -> Response:
        return Response(json.dumps({"type": "FeatureCollection", "features": feats[:3]}),
                        content_type="application/json")

    httpserver.expect_request("/wfs/ows").respond_with_handler(handler)
    with pytest.raises(DataSourceError, match=r"STARTINDEX=3 repeats features"):
        fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))


def test_ign_departement_filter(httpserver: HTTPServer) -> None:
    feats = [ign_commune(r, i) for i, r in enumerate(LOIRE + FINISTERE)]
    httpserver.expect_request("/wfs/ows").respond_with_handler(
        wfs_handler({ign._IGN_COMMUNE_TYPENAME: feats}))
    gdf = fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))
    (request, _), = httpserver.log
    assert request.args["CQL_FILTER"] == "code_insee_du_departement IN ('42')"
    assert request.args["TYPENAMES"] == "ADMINEXPRESS-COG.LATEST:commune"
    assert list(gdf["insee"]) == sorted(r[0] for r in LOIRE)
    assert gdf.set_index("insee").loc["42110", "nom"] == "L'Horme"
    assert str(gdf["population"].dtype) == "Int64"


def test_ign_arrondissements(httpserver: HTTPServer) -> None:
    layers = {
        ign._IGN_COMMUNE_TYPENAME: [ign_commune(r, i) for i, r in enumerate(PARIS)],
        ign._IGN_ARRONDISSEMENT_TYPENAME: [
            ign_arrondissement(r, i, "75056") for i, r in enumerate(PARIS_ARRONDISSEMENTS)
        ],
    }
    httpserver.expect_request("/wfs/ows").respond_with_handler(wfs_handler(layers))
    gdf = fetch(httpserver, "75", source="ign", arrondissements=True,
                base_url=httpserver.url_for("/wfs/ows"))
    assert list(gdf["insee"]) == [f"751{i:02d}" for i in range(1, 21)]
    assert set(gdf["epci"]) == {"200054781"} and set(gdf["region"]) == {"11"}
    assert gdf.set_index("insee").loc["75101", "nom"] == "Paris 1er Arrondissement"
    arr_request = httpserver.log[1][0]
    assert arr_request.args["CQL_FILTER"] == "code_insee_de_la_commune_de_rattach IN ('75056')"


def test_ign_count_differs_from_number_matched(httpserver: HTTPServer, cache: Path) -> None:
    feats = [ign_commune(r, i) for i, r in enumerate(LOIRE)]
    httpserver.expect_request("/wfs/ows").respond_with_handler(
        wfs_handler({ign._IGN_COMMUNE_TYPENAME: feats}, number_matched=10))
    with pytest.raises(DataSourceError, match=r"received 320 features but numberMatched .*10"):
        fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))
    assert cache_files(cache) == []


def test_ign_server_ignoring_the_filter(httpserver: HTTPServer) -> None:
    feats = [ign_commune(r, i) for i, r in enumerate(LOIRE + FINISTERE[:3])]

    def handler(request: Request) -> Response:
        body = {"type": "FeatureCollection", "features": feats, "numberMatched": len(feats),
                "numberReturned": len(feats)}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/wfs/ows").respond_with_handler(handler)
    with pytest.raises(DataSourceError, match=rf"{FINISTERE[0][0]} .* was not asked for"):
        fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))


def test_ign_xml_exception_report(httpserver: HTTPServer) -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><ows:ExceptionReport version="2.0.0" '
        'xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Exception exceptionCode="InvalidParameter'
        'Value"><ows:ExceptionText>Feature type ADMINEXPRESS-COG.LATEST:commune unknown'
        "</ows:ExceptionText></ows:Exception></ows:ExceptionReport>"
    )
    httpserver.expect_request("/wfs/ows").respond_with_data(xml, content_type="text/xml")
    with pytest.raises(DataSourceError, match=r"OGC exception report.*Feature type .* unknown"):
        fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))


def test_ign_missing_required_property(httpserver: HTTPServer) -> None:
    feats = [ign_commune(r, i) for i, r in enumerate(LOIRE)]
    del next(f for f in feats if f["properties"]["code_insee"] == "42110")["properties"][
        "population"]
    httpserver.expect_request("/wfs/ows").respond_with_handler(
        wfs_handler({ign._IGN_COMMUNE_TYPENAME: feats}))
    with pytest.raises(DataSourceError, match=r"42110 lacks the required property population"):
        fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))


# ------------------------------------------------------------------------------------------------
# Retries, timeouts, HTTP errors
# ------------------------------------------------------------------------------------------------
def test_retry_after_500(httpserver: HTTPServer, sleeps: list[float]) -> None:
    httpserver.expect_oneshot_request("/departements/42/communes").respond_with_data(
        "upstream error", status=500)
    serve_loire(httpserver)
    gdf = fetch(httpserver, "42")
    assert len(gdf) == len(LOIRE)
    assert len(httpserver.log) == 2 and [r[1].status_code for r in httpserver.log] == [500, 200]
    assert len(sleeps) == 1 and sleeps[0] < 0.01  # tiny exponential backoff


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("7", 7.0, 7.0),
        ("86400", http._BACKOFF_MAX, http._BACKOFF_MAX),  # capped
        ("HTTP-DATE", 25.0, 31.0),
    ],
)
def test_429_honours_retry_after(
    httpserver: HTTPServer, sleeps: list[float], header: str, low: float, high: float
) -> None:
    if header == "HTTP-DATE":
        when = datetime.now(UTC) + timedelta(seconds=30)
        header = email.utils.format_datetime(when, usegmt=True)
    httpserver.expect_oneshot_request("/departements/42/communes").respond_with_data(
        "slow down", status=429, headers={"Retry-After": header})
    serve_loire(httpserver)
    assert len(fetch(httpserver, "42")) == len(LOIRE)
    assert len(sleeps) == 1 and low <= sleeps[0] <= high


def test_persistent_503(httpserver: HTTPServer, sleeps: list[float], cache: Path) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        "maintenance", status=503)
    with pytest.raises(DataSourceError) as info:
        fetch(httpserver, "42", retries=2)
    message = str(info.value)
    assert httpserver.url_for("/departements/42/communes") in message
    assert "HTTP 503" in message and "3 attempts" in message
    assert len(httpserver.log) == 3 and len(sleeps) == 2
    assert sleeps[1] > sleeps[0]  # exponential
    assert cache_files(cache) == []


def test_no_retry_on_404(httpserver: HTTPServer, sleeps: list[float], cache: Path) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        "Not Found", status=404)
    with pytest.raises(DataSourceError, match=r"/departements/42/communes.*HTTP 404"):
        fetch(httpserver, "42")
    assert len(httpserver.log) == 1 and sleeps == []
    assert cache_files(cache) == []


def test_read_timeout(httpserver: HTTPServer, cache: Path) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(5.0)  # longer than the client's timeout
        return Response(json.dumps(geo_api_fc(LOIRE)), content_type="application/json")

    httpserver.expect_request("/departements/42/communes").respond_with_handler(slow)
    started = time.monotonic()
    try:
        with pytest.raises(DataSourceError, match=r"no answer within 0.2 s \(timeout\).*2 attempt"):
            fetch(httpserver, "42", timeout=0.2, retries=1)
        assert time.monotonic() - started < 2.0
        assert cache_files(cache) == []
    finally:
        release.set()  # let the server threads finish before the next test
        deadline = time.monotonic() + 5.0
        while len(httpserver.log) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)


def test_connection_refused(cache: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataSourceError, match=r"connection failed \(.*refused.*2 attempts"):
        online.fetch_communes("42", base_url=f"http://127.0.0.1:{port}", timeout=1, retries=1)
    assert cache_files(cache) == []


def test_truncated_body_content_length(httpserver: HTTPServer, cache: Path) -> None:
    body = json.dumps(geo_api_fc(LOIRE)).encode()

    def cut(request: Request) -> Response:
        response = Response(body[: len(body) // 2], content_type="application/json")
        response.headers["Content-Length"] = str(len(body))
        response.headers["Connection"] = "close"
        return response

    httpserver.expect_request("/departements/42/communes").respond_with_handler(cut)
    with pytest.raises(DataSourceError, match=rf"truncated body: received {len(body) // 2} of the "
                       rf"{len(body)} bytes.*2 attempts"):
        fetch(httpserver, "42", retries=1)
    assert len(httpserver.log) == 2  # a cut body is a network failure: retried
    assert cache_files(cache) == []


def test_gzip_body_with_content_length(httpserver: HTTPServer) -> None:
    raw = gzip.compress(json.dumps(geo_api_fc(LOIRE)).encode())
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        raw, content_type="application/json", headers={"Content-Encoding": "gzip"})
    gdf = fetch(httpserver, "42")  # Content-Length counts compressed bytes: not "truncated"
    assert len(gdf) == len(LOIRE)
    assert httpserver.log[0][1].headers["Content-Length"] == str(len(raw))


def test_truncated_json(httpserver: HTTPServer, sleeps: list[float], cache: Path) -> None:
    body = json.dumps(geo_api_fc(LOIRE))
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        body[:-40], content_type="application/json")
    with pytest.raises(DataSourceError, match=r"invalid JSON"):
        fetch(httpserver, "42")
    assert len(httpserver.log) == 1 and sleeps == []
    assert cache_files(cache) == []


def test_invalid_json(httpserver: HTTPServer, cache: Path) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        "<html><body>Bad gateway page</body></html>", content_type="text/html")
    with pytest.raises(DataSourceError, match=r"/departements/42/communes.*HTML or XML page.*"
                       r"Bad gateway page"):
        fetch(httpserver, "42")
    assert cache_files(cache) == []


# ------------------------------------------------------------------------------------------------
# Completeness checks
# ------------------------------------------------------------------------------------------------
def _fc_with(change: Any) -> dict[str, Any]:
    fc = geo_api_fc(LOIRE)
    change(fc)
    return fc


def feature(fc: dict[str, Any], insee: str) -> dict[str, Any]:
    """The feature of commune ``insee`` in a FeatureCollection."""
    return next(f for f in fc["features"] if f["properties"].get("code") == insee)


def props(fc: dict[str, Any], insee: str) -> dict[str, Any]:
    return feature(fc, insee)["properties"]


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda fc: props(fc, "42207").pop("codeRegion"),
         r"42207 lacks the required property codeRegion"),
        (lambda fc: props(fc, "42218").update(nom=None),
         r"42218 lacks the required property nom"),
        (lambda fc: fc["features"].append(feature(fc, "42110")),
         r"some communes twice: 42110"),
        (lambda fc: props(fc, "42218").update(code="4221"),
         r"'4221' is not a 5-character INSEE"),
        (lambda fc: props(fc, "42218").update(code=42218),
         r"42218 is not a 5-character INSEE"),
        (lambda fc: feature(fc, "42218").update(geometry={"type": "Point",
                                                          "coordinates": [4.39, 45.43]}),
         r"42218 has no polygon geometry"),
        (lambda fc: feature(fc, "42218").update(geometry=None),
         r"42218 has no polygon geometry"),
        (lambda fc: feature(fc, "42218").update(geometry={"type": "Polygon", "coordinates": []}),
         r"42218 has an empty geometry"),
        (lambda fc: props(fc, "42218").update(population=-3),
         r"42218 has the population -3"),
        (lambda fc: props(fc, "42218").update(population=10**30),
         r"42218 has the implausible population about 10\^30 \(more than 10,000,000"),
        (lambda fc: props(fc, "42218").update(population=1e30),
         r"42218 has the implausible population about 10\^30"),
        (lambda fc: props(fc, "42218").update(codeEpci="24420077"),
         r"42218 has the malformed EPCI"),
        (lambda fc: fc.update(type="Feature"), r"did not send a GeoJSON FeatureCollection"),
        (lambda fc: fc.pop("features"), r"without a 'features' list"),
        (lambda fc: feature(fc, "42218").update(geometry={
            "type": "Polygon", "coordinates": [[[800000, 6500000], [800100, 6500000],
                                                [800100, 6500100], [800000, 6500000]]]}),
         r"geometry of commune 42218 is not in longitude/latitude"),
        (lambda fc: feature(fc, "42218").update(geometry={
            "type": "Polygon", "coordinates": [[[4.0, 45.0], [1e300, 45.0], [4.0, 45.1],
                                                [4.0, 45.0]]]}),
         r"geometry of commune 42218 is not in longitude/latitude"),
        (lambda fc: feature(fc, "42218").update(geometry={
            "type": "Polygon", "coordinates": [[[[[[4.0, 45.0]]]]]]}),
         r"42218 has a malformed geometry"),
    ],
)
def test_incomplete_or_inconsistent_answers(
    httpserver: HTTPServer, cache: Path, change: Any, pattern: str
) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_json(_fc_with(change))
    with pytest.raises(DataSourceError, match=pattern):
        fetch(httpserver, "42")
    assert cache_files(cache) == []


def test_invalid_geometry_is_repaired_with_a_warning(httpserver: HTTPServer) -> None:
    fc = geo_api_fc(LOIRE)
    bowtie = [[[4.0, 45.0], [4.01, 45.01], [4.01, 45.0], [4.0, 45.01], [4.0, 45.0]]]
    feature(fc, "42110")["geometry"] = {"type": "Polygon", "coordinates": bowtie}
    httpserver.expect_request("/departements/42/communes").respond_with_json(fc)
    with pytest.warns(CptsGeoWarning, match=r"repaired 1 invalid commune geometry.*42110"):
        gdf = fetch(httpserver, "42")
    geom = gdf.set_index("insee").loc["42110", "geometry"]
    assert isinstance(geom, MultiPolygon) and geom.is_valid and geom.area > 0


def test_partial_answer_is_refused_and_never_cached(httpserver: HTTPServer, cache: Path) -> None:
    # the case: 1 of the Loire's 320 communes, accepted and cached for ever before
    httpserver.expect_request("/departements/42/communes").respond_with_json(
        geo_api_fc([r for r in LOIRE if r[0] == "42218"]))
    with pytest.raises(DataSourceError, match=(
            r"incomplete or inconsistent answer for département 42 \(Loire\): 1 commune "
            r"received where the bundle \(COG 2026\) has 320; 319 missing \(42001, .*at most 7 "
            r"are accepted each way.*Nothing was cached")):
        fetch(httpserver, "42")
    assert cache_files(cache) == []
    httpserver.clear()
    serve_loire(httpserver)  # the service is whole again: the next call downloads
    assert len(fetch(httpserver, "42")) == 320
    assert len(httpserver.log) == 1


def test_completeness_tolerates_merged_and_created_communes(
    httpserver: HTTPServer, cache: Path
) -> None:
    # the Loire (320 communes): max(5, ceil(2 % of 320)) = 7 codes each way
    assert features._slack(320) == 7 and features._slack(101) == 5
    merged = {r[0] for r in LOIRE[10:17]}  # 7 communes merged into others
    created = [("42990", "Commune rétablie", "244200770", 1200),
               ("42991", "Autre commune", None, 300)]
    served = [r for r in LOIRE if r[0] not in merged] + created
    httpserver.expect_request("/departements/42/communes").respond_with_json(geo_api_fc(served))
    gdf = fetch(httpserver, "42")
    assert len(gdf) == 320 - 7 + 2 and {"42990", "42991"} <= set(gdf["insee"])
    assert len(cache_files(cache)) == 1


def test_one_code_beyond_the_tolerance_is_refused(httpserver: HTTPServer, cache: Path) -> None:
    gone = [r[0] for r in LOIRE[10:18]]  # 8 > 7
    httpserver.expect_request("/departements/42/communes").respond_with_json(
        geo_api_fc([r for r in LOIRE if r[0] not in gone]))
    with pytest.raises(DataSourceError, match=rf"312 communes received .* 8 missing "
                       rf"\({', '.join(gone)}\)"):
        fetch(httpserver, "42")
    assert cache_files(cache) == []


def test_unknown_codes_beyond_the_tolerance_are_refused(httpserver: HTTPServer) -> None:
    extra = [(f"42{n}", f"Inconnue {n}", None, 10) for n in range(900, 908)]
    httpserver.expect_request("/departements/42/communes").respond_with_json(
        geo_api_fc(LOIRE + extra))
    with pytest.raises(DataSourceError, match=r"8 unknown to the bundle \(42900, 42901"):
        fetch(httpserver, "42")


@pytest.mark.parametrize(("field", "key"), [("population", 3), ("EPCI", 2)])
def test_an_answer_without_populations_or_epci_is_refused(
    httpserver: HTTPServer, cache: Path, field: str, key: int
) -> None:
    lacking = {r[0] for r in LOIRE[:8]}
    rows = [tuple(None if (i == key and r[0] in lacking) else v for i, v in enumerate(r))
            for r in LOIRE]
    httpserver.expect_request("/departements/42/communes").respond_with_json(geo_api_fc(rows))
    with pytest.raises(DataSourceError, match=rf"8 of the 320 communes of département 42 "
                       rf"\(Loire\) have no {field.lower()}.*at most 7"):
        fetch(httpserver, "42")
    assert cache_files(cache) == []


def test_ign_partial_answer_is_refused(httpserver: HTTPServer, cache: Path) -> None:
    feats = [ign_commune(r, i) for i, r in enumerate(LOIRE[:100])]
    httpserver.expect_request("/wfs/ows").respond_with_handler(
        wfs_handler({ign._IGN_COMMUNE_TYPENAME: feats}))  # numberMatched agrees: 100
    with pytest.raises(DataSourceError, match=r"100 communes received where the bundle "
                       r"\(COG 2026\) has 320; 220 missing"):
        fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))
    assert cache_files(cache) == []


def test_ign_absurd_number_matched_is_refused_at_once(httpserver: HTTPServer) -> None:
    feats = [ign_commune(r, i) for i, r in enumerate(LOIRE)]
    httpserver.expect_request("/wfs/ows").respond_with_handler(
        wfs_handler({ign._IGN_COMMUNE_TYPENAME: feats}, number_matched=10**30))
    with pytest.raises(DataSourceError, match=r"numberMatched announces "
                       r"1,000,000,000,000,000,000,000,000,000,000 features where at most 327"):
        fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))
    assert len(httpserver.log) == 1


def test_ign_endless_paging_stops_at_the_plausible_count(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ign, "_WFS_PAGE_SIZE", 100)

    def endless(request: Request) -> Response:  # always a full page of new features
        start = int(request.args["STARTINDEX"])
        page = [ign_commune(LOIRE[(start + i) % 320], start + i) for i in range(100)]
        return Response(json.dumps({"type": "FeatureCollection", "features": page}),
                        content_type="application/json")

    httpserver.expect_request("/wfs/ows").respond_with_handler(endless)
    with pytest.raises(DataSourceError, match=r"more than 327 features"):
        fetch(httpserver, "42", source="ign", base_url=httpserver.url_for("/wfs/ows"))
    assert len(httpserver.log) == 4


# ------------------------------------------------------------------------------------------------
# Hostile answers: nesting, numbers, sizes, compression, drip
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("[" * 100_000 + "]" * 100_000, r"JSON nested too deeply to be read \(200000 bytes\)"),
        ('{"type": "FeatureCollection", "features": [], "x": ' + "[" * 100_000
         + "]" * 100_000 + "}", r"nested too deeply"),
        ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
         '{"population": NaN}}]}', r"invalid JSON .*NaN is not a JSON number"),
        ('{"type": "FeatureCollection", "features": [], "n": -Infinity}',
         r"-Infinity is not a JSON number"),
        ('{"type": "FeatureCollection", "features": [], "n": ' + "9" * 5000 + "}",
         r"invalid JSON .*digits"),
    ],
    ids=["nested", "nested-inside", "nan", "infinity", "5000-digit-number"],
)
def test_hostile_json_is_a_data_source_error(
    httpserver: HTTPServer, cache: Path, body: str, pattern: str
) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        body, content_type="application/json")
    with pytest.raises(DataSourceError, match=pattern):
        fetch(httpserver, "42")
    assert cache_files(cache) == []


def test_nan_coordinates_are_refused(httpserver: HTTPServer) -> None:
    body = json.dumps(geo_api_fc(LOIRE)).replace("[4.0, 45.0]", "[NaN, 45.0]", 1)
    assert "NaN" in body
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        body, content_type="application/json")
    with pytest.raises(DataSourceError, match=r"NaN is not a JSON number"):
        fetch(httpserver, "42")


def gzip_bomb(size: int) -> bytes:
    """A valid gzip stream of ``size`` zero bytes (whole MiB), about 1,000 times smaller.

    Compressing a GiB takes seconds; after a full flush every MiB of zeros compresses to the
    same bytes, so the stream is assembled from them and given the right CRC and length.
    """
    mib = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    middle = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush(zlib.Z_FINISH)[:-8]
    crc = 0
    for _ in range(size >> 20):
        crc = zlib.crc32(mib, crc)
    return head + middle * ((size >> 20) - 1) + end + struct.pack("<II", crc, size & 0xFFFFFFFF)


def test_gzip_bomb_helper_is_a_valid_stream() -> None:
    assert gzip.decompress(gzip_bomb(3 << 20)) == bytes(3 << 20)


@functools.cache
def gib_bomb() -> bytes:
    return gzip_bomb(1 << 30)  # the case: 1 MB that expands to 1 GiB


def test_gzip_bomb_stops_at_a_lower_limit(httpserver: HTTPServer, cache: Path) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        gib_bomb(), content_type="application/json", headers={"Content-Encoding": "gzip"})
    with pytest.raises(ResourceLimitError, match=r"larger than the limit of 16 MiB once "
                       r"decompressed \(`max_bytes`=16777216\)"):
        fetch(httpserver, "42", max_bytes=16 << 20)
    assert len(httpserver.log) == 1 and cache_files(cache) == []


@pytest.mark.slow  # decompresses 256 MiB
def test_gzip_bomb_is_refused_at_the_default_limit(
    httpserver: HTTPServer, sleeps: list[float], cache: Path
) -> None:
    bomb = gib_bomb()
    assert len(bomb) < 1_100_000
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        bomb, content_type="application/json", headers={"Content-Encoding": "gzip"})
    started = time.monotonic()
    with pytest.raises(ResourceLimitError, match=(
            r"larger than the limit of 256 MiB once decompressed \(`max_bytes`=268435456\).*"
            r"pass a larger `max_bytes`")):
        fetch(httpserver, "42")
    assert time.monotonic() - started < 10
    assert len(httpserver.log) == 1 and sleeps == []  # a limit is not retried
    assert cache_files(cache) == []


def test_max_bytes_bounds_the_body_as_received_and_can_be_raised(
    httpserver: HTTPServer, cache: Path
) -> None:
    body = json.dumps(geo_api_fc(LOIRE)).encode()
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        body, content_type="application/json")
    with pytest.raises(ResourceLimitError, match=r"limit of 64 KiB as received"):
        fetch(httpserver, "42", max_bytes=65_536)
    assert cache_files(cache) == []
    assert len(fetch(httpserver, "42", max_bytes=len(body))) == 320  # exactly the limit: fine


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_bodies_are_decoded(httpserver: HTTPServer, wbits: int) -> None:
    c = zlib.compressobj(6, zlib.DEFLATED, wbits)
    raw = c.compress(json.dumps(geo_api_fc(LOIRE)).encode()) + c.flush()
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        raw, content_type="application/json", headers={"Content-Encoding": "deflate"})
    assert len(fetch(httpserver, "42")) == 320
    assert httpserver.log[0][0].headers["Accept-Encoding"] == "gzip, deflate"


def test_unknown_content_encoding_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        b"\x1b\x00\x00", content_type="application/json", headers={"Content-Encoding": "br"})
    with pytest.raises(DataSourceError, match=r"unsupported Content-Encoding 'br'"):
        fetch(httpserver, "42")


def test_cut_gzip_stream_is_a_truncated_body(httpserver: HTTPServer, cache: Path) -> None:
    whole = gzip.compress(json.dumps(geo_api_fc(LOIRE)).encode())
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        whole[: len(whole) // 2], content_type="application/json",
        headers={"Content-Encoding": "gzip"})
    with pytest.raises(DataSourceError, match=r"gzip stream is cut short.*3 attempts"):
        fetch(httpserver, "42")
    assert cache_files(cache) == []


def test_deadline_stops_a_server_dripping_its_body(httpserver: HTTPServer, cache: Path) -> None:
    # the case: a byte every half second kept a loader for 200 s with timeout=2
    stop = threading.Event()

    def drip(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b'{"type": "FeatureCollection", "features": ['
            while not stop.wait(0.1):
                yield b" "
        return Response(body(), content_type="application/json")

    httpserver.expect_request("/departements/42/communes").respond_with_handler(drip)
    started = time.monotonic()
    try:
        with pytest.raises(DataSourceError, match=(
                r"no complete answer within the deadline of 1 s for one download "
                r"\(`deadline`.*gave up after 1 attempt$")):
            fetch(httpserver, "42", timeout=2, retries=3, deadline=1)
        assert time.monotonic() - started < 2.5
        assert cache_files(cache) == []
    finally:
        stop.set()


def test_deadline_stops_a_server_dripping_its_headers(cache: Path) -> None:
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 10_000:
                if stop.wait(0.1):
                    break
                conn.sendall(bytes([byte]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(DataSourceError, match=r"deadline of 1 s"):
            online.fetch_communes("42", base_url=f"http://127.0.0.1:{port}", timeout=2,
                                  retries=0, deadline=1)
        assert time.monotonic() - started < 2.5
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert cache_files(cache) == []


def test_deadline_covers_the_waits_between_attempts(
    httpserver: HTTPServer, sleeps: list[float]
) -> None:
    httpserver.expect_request("/departements/42/communes").respond_with_data(
        "busy", status=503, headers={"Retry-After": "30"})
    with pytest.raises(DataSourceError, match=r"HTTP 503 SERVICE UNAVAILABLE; the next attempt "
                       r"would start after the deadline of 5 s.*gave up after 1 attempt"):
        fetch(httpserver, "42", deadline=5)
    assert sleeps == []  # no 30 s wait that would end after the deadline


# ------------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------------
def test_cache_is_used_on_second_call(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    first = fetch(httpserver, "42")
    second = fetch(httpserver, ["42"])
    assert len(httpserver.log) == 1
    pd.testing.assert_frame_equal(pd.DataFrame(first), pd.DataFrame(second))
    assert second.attrs == first.attrs and "cpts_geo_cache" not in second.attrs
    assert second.crs.to_epsg() == 4326 and str(second["population"].dtype) == "Int64"
    assert len(cache_files(cache)) == 1


def test_refresh_downloads_again(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    fetch(httpserver, "42")
    fetch(httpserver, "42", refresh=True)
    assert len(httpserver.log) == 2
    assert len(cache_files(cache)) == 1


def test_failed_refresh_keeps_the_good_cache(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    fetch(httpserver, "42")
    (name,) = cache_files(cache)
    before = (cache / name).read_bytes()
    httpserver.clear()
    httpserver.expect_request("/departements/42/communes").respond_with_data("oops", status=502)
    with pytest.raises(DataSourceError):
        fetch(httpserver, "42", refresh=True, retries=1)
    assert cache_files(cache) == [name] and (cache / name).read_bytes() == before
    assert len(fetch(httpserver, "42")) == len(LOIRE)  # still served from the cache


def _rewrite_cache(path: Path, change: Any) -> None:
    gdf = gpd.read_parquet(path)
    changed = change(gdf)
    (gdf if changed is None else changed).to_parquet(path)


def test_cache_files_record_their_date_and_url(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    before = datetime.now(UTC).replace(microsecond=0)
    gdf = fetch(httpserver, "42")
    (name,) = cache_files(cache)
    meta = gpd.read_parquet(cache / name).attrs["cpts_geo_cache"]
    written = datetime.fromisoformat(meta["written"])
    assert before <= written <= datetime.now(UTC)
    assert meta["base_url"] == httpserver.url_for("/").rstrip("/") and meta["version"] == 2
    assert datetime.fromisoformat(gdf.attrs["retrieved"]) >= before


def test_max_age_downloads_an_old_cache_file_again(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    fetch(httpserver, "42")
    (name,) = cache_files(cache)
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="seconds")

    def age(gdf: gpd.GeoDataFrame) -> None:
        gdf.attrs["cpts_geo_cache"]["written"] = old

    _rewrite_cache(cache / name, age)
    fetch(httpserver, "42")  # no max_age: any age will do
    fetch(httpserver, "42", max_age=60)
    fetch(httpserver, "42", max_age=timedelta(days=60))
    assert len(httpserver.log) == 1
    fetch(httpserver, "42", max_age=30)  # 40 days old: downloaded again, and rewritten
    assert len(httpserver.log) == 2
    fetch(httpserver, "42", max_age=30)
    assert len(httpserver.log) == 2
    fetch(httpserver, "42", max_age=0)  # 0: always download
    assert len(httpserver.log) == 3


def test_a_partial_cache_file_is_never_served(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    fetch(httpserver, "42")
    (name,) = cache_files(cache)
    _rewrite_cache(cache / name, lambda gdf: gdf.iloc[:1])  # as an older version could cache
    with pytest.warns(CptsGeoWarning, match=r"corrupt cache file .*incomplete.*1 commune "
                      r"received where the bundle \(COG 2026\) has 320"):
        gdf = fetch(httpserver, "42")
    assert len(gdf) == 320 and len(httpserver.log) == 2


def test_load_communes_online_refresh_and_max_age(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    serve_loire(httpserver)
    monkeypatch.setattr(online, "GEO_API_URL", httpserver.url_for("/"))
    first = cpts_geo.load_communes("42", source="geo-api")
    assert len(first) == 320 and first.attrs["source_kind"] == "geo-api"
    cpts_geo.load_communes("42", source="geo-api")
    assert len(httpserver.log) == 1
    cpts_geo.load_communes("42", source="geo-api", refresh=True)
    assert len(httpserver.log) == 2
    cpts_geo.load_communes("42", source="geo-api", max_age=0)
    assert len(httpserver.log) == 3
    with pytest.raises(InputError, match=r"`refresh` and `max_age` only apply to the online"):
        cpts_geo.load_communes("42", refresh=True)


@pytest.mark.parametrize("garbage", [b"", b"PAR1 not really parquet", b"\x00" * 100])
def test_corrupt_cache_is_ignored(httpserver: HTTPServer, cache: Path, garbage: bytes) -> None:
    serve_loire(httpserver)
    fetch(httpserver, "42")
    (name,) = cache_files(cache)
    (cache / name).write_bytes(garbage)
    with pytest.warns(CptsGeoWarning, match=r"corrupt cache file .*downloading again"):
        gdf = fetch(httpserver, "42")
    assert len(gdf) == len(LOIRE) and len(httpserver.log) == 2
    assert cache_files(cache) == [name]
    assert len(gpd.read_parquet(cache / name)) == len(LOIRE)


def test_cache_from_another_layout_is_ignored(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    fetch(httpserver, "42")
    (name,) = cache_files(cache)
    other = gpd.read_parquet(cache / name).drop(columns="epci")
    other.to_parquet(cache / name)
    with pytest.warns(CptsGeoWarning, match=r"corrupt cache file"):
        fetch(httpserver, "42")
    assert len(httpserver.log) == 2


def test_env_cache_dir_and_argument(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    serve_loire(httpserver)
    env_dir = tmp_path / "from-env"
    monkeypatch.setenv("CPTS_GEO_CACHE_DIR", str(env_dir))
    fetch(httpserver, "42")
    assert len(cache_files(env_dir)) == 1
    arg_dir = tmp_path / "from-arg"
    fetch(httpserver, "42", cache_dir=arg_dir)
    assert len(cache_files(arg_dir)) == 1 and len(httpserver.log) == 2


def test_cache_key_depends_on_the_request_set(httpserver: HTTPServer, cache: Path) -> None:
    serve_loire(httpserver)
    serve_corsica(httpserver)
    fetch(httpserver, "42")
    fetch(httpserver, ["2a", "2B"])
    fetch(httpserver, regions="94")  # same départements as above: served from the cache
    assert len(httpserver.log) == 3
    assert len(cache_files(cache)) == 2


def test_unwritable_cache_warns_and_leaves_no_temp_file(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    serve_loire(httpserver)

    def broken_to_parquet(self: gpd.GeoDataFrame, path: str, **kwargs: Any) -> None:
        Path(path).write_bytes(b"PAR1 half written")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_parquet", broken_to_parquet)
    with pytest.warns(CptsGeoWarning, match=r"could not write the cache file"):
        gdf = fetch(httpserver, "42")
    assert len(gdf) == len(LOIRE)
    assert cache_files(cache) == []


def test_stale_temp_files_are_cleaned(
    httpserver: HTTPServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.mkdir(parents=True)
    stale = cache / ".communes-geo-api-42-0123456789abcdef.xyz.tmp"
    stale.write_bytes(b"left by a killed process")
    monkeypatch.setattr(cache_module, "_STALE_TEMP_AGE", -1.0)
    serve_loire(httpserver)
    fetch(httpserver, "42")
    assert not stale.exists() and len(cache_files(cache)) == 1


# ------------------------------------------------------------------------------------------------
# Input validation (no request is made)
# ------------------------------------------------------------------------------------------------
def test_scope_normalisation() -> None:
    assert online._resolve_scope("1", None) == ("01",)
    assert online._resolve_scope([1, "2a", " 42 ", "974", "7.0"], None) == (
        "01", "07", "2A", "42", "974"
    )
    assert online._resolve_scope(None, "53") == ("22", "29", "35", "56")
    assert online._resolve_scope("29", [53]) == ("22", "29", "35", "56")
    assert online._resolve_scope(None, None) is None
    assert len(features._ALL_DEPARTEMENTS) == 101


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"departements": "20"}, r"'2A' \(Corse-du-Sud\)"),
        ({"departements": "99"}, r"e.g. '42' or 'Loire'"),
        ({"departements": "42,43"}, r"pass a list"),
        ({"departements": "975"}, r"Overseas collectivities"),
        ({"departements": []}, r"empty list"),
        ({"departements": True}, r"expected a département code or name"),
        ({"regions": "82"}, r"'82' is not a région"),
        ({"source": "osm"}, r"'geo-api'"),
        ({"departements": "42", "timeout": 0}, r"timeout"),
        ({"departements": "42", "retries": -1}, r"retries"),
        ({"departements": "42", "deadline": 0}, r"`deadline` was 0 but must be a positive"),
        ({"departements": "42", "deadline": float("inf")}, r"`deadline` was inf"),
        ({"departements": "42", "max_bytes": 0}, r"`max_bytes` was 0 but must be a positive"),
        ({"departements": "42", "max_bytes": 1.5}, r"`max_bytes` was 1.5"),
        ({"departements": "42", "max_age": -1}, r"`max_age` was -1 but must be a number of days"),
        ({"departements": "42", "max_age": "30"}, r"`max_age` was '30'"),
        ({"departements": "42", "max_age": timedelta(days=-1)}, r"`max_age` was"),
        ({"departements": "42", "base_url": "geo.api.gouv.fr"}, r"http\(s\) URL"),
    ],
)
def test_input_errors(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        online.fetch_communes(**kwargs)


def test_urls_in_errors_hide_secrets() -> None:
    shown = http._redact_url("https://user:pw@example.org/wfs?apikey=SECRET&typeName=a:b")
    assert "SECRET" not in shown and "pw" not in shown and "user" not in shown
    assert "typeName=a:b" in shown and shown.startswith("https://example.org/wfs?")


def test_given_session_is_used_and_not_closed(httpserver: HTTPServer) -> None:
    serve_loire(httpserver)
    session = requests.Session()
    session.headers["User-Agent"] = "planner-tool/1.0"
    fetch(httpserver, "42", session=session)
    assert httpserver.log[0][0].headers["User-Agent"] == "planner-tool/1.0"
    session.get(httpserver.url_for("/departements/42/communes"), timeout=2).raise_for_status()
    session.close()
