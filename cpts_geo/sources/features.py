"""Checks shared by the online services: every feature, property and geometry they send.

An answer is accepted only when it is a FeatureCollection whose features carry every required
property, a valid 5-character INSEE code of the département asked for, a plausible population and
a polygonal geometry in longitude/latitude, and when it is complete: for each département, the
communes it lists are those of the bundle (COG 2026) within a stated tolerance (see
:func:`_check_complete`). Anything else raises :class:`~cpts_geo.errors.DataSourceError` naming
the URL and the commune or the département.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from ..errors import CptsGeoWarning, DataSourceError, first_items, plural
from ..geography import OVERSEAS_COLLECTIVITIES, arrondissements, departement_of, departements
from .bundle import _unit_codes

__all__: list[str] = []

_COM_PREFIXES = OVERSEAS_COLLECTIVITIES
#: Every département served (metropolitan France and the five overseas départements).
_ALL_DEPARTEMENTS: tuple[str, ...] = tuple(sorted(departements()))
#: Département -> the city split into municipal arrondissements there.
_PLM_BY_DEPARTEMENT = {departement_of(city): city for city in arrondissements()}
#: The Métropole du Grand Paris, the EPCI à fiscalité propre of communes that the WFS also
#: lists under their établissement public territorial.
_MGP_SIREN = "200054781"

#: Completeness tolerance: an answer may differ from the bundle's units of a département by
#: ``max(_SLACK_MIN, ceil(_SLACK_SHARE * n))`` codes each way (codes of the bundle missing from the
#: answer, codes of the answer unknown to the bundle), and as many communes may lack a
#: population or an EPCI. The difference is explainable: communes merged into a commune
#: nouvelle (their codes disappear) or restored (a new code) since COG 2026, and the few communes
#: outside any EPCI (three islands of the Finistère). Measured between two vintages of
#: @etalab/decoupage-administratif (4.0.0 and 6.0.0, two years of changes), the largest change in
#: a département was 6 codes gone in the Doubs (569 communes, 1.1 %), the largest share 1 of 40
#: in the Seine-Saint-Denis, at most 1 code created; a truncated answer (one page, one commune
#: out of 320) misses far more.
_SLACK_MIN = 5
_SLACK_SHARE = 0.02
#: Largest plausible population of one commune (Paris, the largest, has 2.1 million).
_MAX_POPULATION = 10_000_000

_INSEE_RE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_SIREN_RE = re.compile(r"^\d{9}$")


def _feature_list(doc: object, shown: str) -> list[dict[str, Any]]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise DataSourceError(f"{shown} did not send a GeoJSON FeatureCollection (got {kind!r})")
    features = doc.get("features")
    if not isinstance(features, list):
        raise DataSourceError(f"{shown} sent a FeatureCollection without a 'features' list")
    for i, feature in enumerate(features):
        if not isinstance(feature, dict) or not isinstance(feature.get("properties"), dict):
            raise DataSourceError(f"{shown}: feature #{i} has no 'properties' object")
    return features


def _properties(
    feature: dict[str, Any],
    fields: Mapping[str, str],
    required: Sequence[str],
    shown: str,
    index: int,
) -> dict[str, Any]:
    """Map a feature's properties to our names, checking that the required ones are present."""
    props = feature["properties"]
    nullable = ("epci", "population")  # present but null is allowed: no EPCI, no population
    missing = [
        fields[k]
        for k in required
        if fields[k] not in props or (props[fields[k]] is None and k not in nullable)
    ]
    if missing:
        ident = props.get(fields["insee"], f"feature #{index}")
        raise DataSourceError(
            f"{shown}: {ident!s} lacks the required propert"
            f"{'ies' if len(missing) > 1 else 'y'} {', '.join(missing)}"
        )
    return {ours: props.get(theirs) for ours, theirs in fields.items()}


def _check_insee(value: object, shown: str) -> str:
    if not isinstance(value, str) or not _INSEE_RE.match(value):
        raise DataSourceError(f"{shown}: {value!r} is not a 5-character INSEE commune code")
    return value


def _check_departement(value: object, insee: str, shown: str) -> str:
    if not isinstance(value, str) or value not in departements():
        raise DataSourceError(f"{shown}: commune {insee} has the unknown département {value!r}")
    if departement_of(insee) != value:
        raise DataSourceError(
            f"{shown}: commune {insee} is said to be in département {value}, which its code "
            "contradicts"
        )
    return value


def _check_region(value: object, insee: str, shown: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}", value):
        raise DataSourceError(f"{shown}: commune {insee} has the malformed région {value!r}")
    return value


def _check_population(value: object, insee: str, shown: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise DataSourceError(f"{shown}: commune {insee} has the population {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise DataSourceError(f"{shown}: commune {insee} has the population {value!r}")
    if value > _MAX_POPULATION:
        raise DataSourceError(
            f"{shown}: commune {insee} has the implausible population {_short_repr(value)} "
            f"(more than {_MAX_POPULATION:,}; the largest French commune, Paris, has 2.1 "
            "million): the service sent a wrong answer"
        )
    return value


def _short_repr(value: object, limit: int = 40) -> str:
    """``repr`` for a message, cut to ``limit`` characters (a number may have 4,000 digits)."""
    text = repr(value) if not isinstance(value, int) else (
        str(value) if value < 10**30 else f"about 10^{len(str(value)) - 1}")
    return text if len(text) <= limit else text[:limit] + "..."


def _check_epci(value: object, insee: str, shown: str) -> str | None:
    """Return one SIREN, or None; several SIREN ("a/b") keep the EPCI à fiscalité propre."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataSourceError(f"{shown}: commune {insee} has the malformed EPCI {value!r}")
    codes = [c.strip() for c in value.split("/") if c.strip() and c.strip().upper() != "NR"]
    if not codes:
        return None
    for code in codes:
        if not _SIREN_RE.match(code):
            raise DataSourceError(f"{shown}: commune {insee} has the malformed EPCI {value!r}")
    return _MGP_SIREN if _MGP_SIREN in codes else codes[0]


def _geometry(feature: dict[str, Any], insee: str, shown: str) -> BaseGeometry:
    raw = feature.get("geometry")
    if not isinstance(raw, dict) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        kind = raw.get("type") if isinstance(raw, dict) else raw
        raise DataSourceError(
            f"{shown}: commune {insee} has no polygon geometry (got {kind!r}); ask for the "
            "contour, not the centre"
        )
    try:
        geom = shape(raw)
    except (ValueError, TypeError, AttributeError, IndexError, OverflowError, RecursionError,
            shapely.errors.ShapelyError) as exc:
        raise DataSourceError(f"{shown}: commune {insee} has a malformed geometry: {exc}") from exc
    if geom.is_empty:
        raise DataSourceError(f"{shown}: commune {insee} has an empty geometry")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise DataSourceError(
            f"{shown}: the geometry of commune {insee} is not in longitude/latitude degrees "
            f"(bounds {minx:.0f}, {miny:.0f}, {maxx:.0f}, {maxy:.0f}); expected EPSG:4326"
        )
    return geom


def _commune_row(
    p: dict[str, Any], feature: dict[str, Any], insee: str, dep: str, shown: str
) -> dict[str, Any]:
    """One checked row of the result, from a feature's mapped properties."""
    return {
        "insee": insee,
        "nom": p["nom"].strip(),
        "departement": dep,
        "region": _check_region(p["region"], insee, shown),
        "epci": _check_epci(p["epci"], insee, shown),
        "population": _check_population(p["population"], insee, shown),
        "geometry": _geometry(feature, insee, shown),
    }


def _check_duplicates(codes: Iterable[str], shown: str) -> None:
    dups = sorted(code for code, n in Counter(codes).items() if n > 1)
    if dups:
        head = ", ".join(dups[:10]) + (f" (and {len(dups) - 10} more)" if len(dups) > 10 else "")
        raise DataSourceError(f"{shown}: the answer lists some communes twice: {head}")


def _check_arrondissements(
    found: Mapping[str, Iterable[str]], cities: Iterable[str], shown: str
) -> None:
    for city in cities:
        expected = frozenset(arrondissements()[city])
        got = set(found.get(city, ()))
        if got != expected:
            missing = sorted(expected - got)
            extra = sorted(got - expected)
            raise DataSourceError(
                f"{shown}: incomplete municipal arrondissements for {city}: expected "
                f"{len(expected)}, got {len(got)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unexpected {', '.join(extra)}" if extra else "")
            )


def _slack(n: int) -> int:
    """How many codes an answer may differ by, for a département of ``n`` units."""
    return max(_SLACK_MIN, math.ceil(_SLACK_SHARE * n))


def _expected_max(scope: Iterable[str], *, arrondissements: bool) -> int:
    """The most units a complete answer for ``scope`` may hold (bundle count plus tolerance)."""
    codes = _unit_codes(arrondissements)
    return sum(len(codes[d]) + _slack(len(codes[d])) for d in scope)


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _check_complete(
    rows: Iterable[Mapping[str, Any]],
    scope: Iterable[str],
    *,
    arrondissements: bool,
    shown: str,
) -> None:
    """Refuse an answer that is not complete for every département of ``scope``.

    For each département, the INSEE codes received are compared with the bundle's (the
    manifest's ``n_communes``, or ``n_units_arrondissements`` with ``arrondissements``): at most
    :func:`_slack` codes may be missing and as many unknown, and as many communes may lack a
    population or an EPCI (see ``_SLACK_MIN``). Raises :class:`DataSourceError` naming the
    département, the counts, the first codes missing and the tolerance.
    """
    expected = _unit_codes(arrondissements)
    by_dep: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_dep.setdefault(str(r["departement"]), []).append(r)
    for dep in scope:
        got = by_dep.get(dep, [])
        want = expected[dep]
        codes = {str(r["insee"]) for r in got}
        allowed = _slack(len(want))
        missing = sorted(want - codes)
        unknown = sorted(codes - want)
        name = f"département {dep} ({departements()[dep].nom})"
        unit = "unit" if arrondissements else "commune"
        units = unit + "s"
        tolerance = (
            f"at most {allowed} are accepted each way, for communes merged or created since "
            "COG 2026"
        )
        if len(missing) > allowed or len(unknown) > allowed:
            detail = []
            if missing:
                detail.append(f"{len(missing)} missing ({first_items(missing, 10)})")
            if unknown:
                detail.append(f"{len(unknown)} unknown to the bundle "
                              f"({first_items(unknown, 10)})")
            raise DataSourceError(
                f"{shown}: incomplete or inconsistent answer for {name}: "
                f"{plural(len(codes), unit)} received where the bundle (COG 2026) has "
                f"{len(want)}; "
                + "; ".join(detail)
                + f"; {tolerance}. Nothing was cached: try again later, or use the bundled "
                "communes (source='bundled')"
            )
        for field, what in (("population", "a population"), ("epci", "an EPCI")):
            lacking = sorted(str(r["insee"]) for r in got if _missing(r[field]))
            if len(lacking) > allowed:
                raise DataSourceError(
                    f"{shown}: {len(lacking)} of the {len(codes)} {units} of {name} have no "
                    f"{field} ({first_items(lacking, 10)}); at most {allowed} are accepted: the "
                    f"service sent an incomplete answer (without {what}). Nothing was cached: "
                    "try again later, or use the bundled communes (source='bundled')"
                )


def _as_multipolygon(geom: BaseGeometry) -> MultiPolygon | None:
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    polygons: list[Polygon] = []
    for part in shapely.get_parts(geom):
        if isinstance(part, Polygon) and not part.is_empty:
            polygons.append(part)
        elif isinstance(part, MultiPolygon):
            polygons.extend(p for p in part.geoms if not p.is_empty)
    return MultiPolygon(polygons) if polygons else None


def _finalize(rows: list[dict[str, Any]], attrs: dict[str, Any], where: str) -> gpd.GeoDataFrame:
    """Build the frame: repair invalid geometries, promote to MultiPolygon, sort, type, attrs."""
    if not rows:
        raise DataSourceError(f"{where}: the service sent no commune at all")
    rows = sorted(rows, key=lambda r: r["insee"])
    geoms = [r["geometry"] for r in rows]
    invalid = [i for i, ok in enumerate(shapely.is_valid(geoms)) if not ok]
    if invalid:
        for i in invalid:
            geoms[i] = shapely.make_valid(geoms[i])
        codes = [rows[i]["insee"] for i in invalid]
        head = ", ".join(codes[:20]) + (f" (and {len(codes) - 20} more)" if len(codes) > 20 else "")
        warnings.warn(
            f"repaired {len(codes)} invalid commune geometr{'ies' if len(codes) > 1 else 'y'} "
            f"with shapely.make_valid: {head}",
            CptsGeoWarning,
            stacklevel=4,
        )
    multi = []
    for row, geom in zip(rows, geoms, strict=True):
        fixed = _as_multipolygon(geom)
        if fixed is None:
            raise DataSourceError(
                f"{where}: commune {row['insee']} has a degenerate geometry (no area)"
            )
        multi.append(fixed)
    gdf = gpd.GeoDataFrame(
        {
            "insee": pd.array([r["insee"] for r in rows], dtype="str"),
            "nom": pd.array([r["nom"] for r in rows], dtype="str"),
            "departement": pd.array([r["departement"] for r in rows], dtype="str"),
            "region": pd.array([r["region"] for r in rows], dtype="str"),
            "epci": pd.array([r["epci"] for r in rows], dtype="str"),
            "population": pd.array([r["population"] for r in rows], dtype="Int64"),
        },
        geometry=gpd.GeoSeries(multi, crs="EPSG:4326"),
    )
    gdf.attrs = {
        **attrs,
        "retrieved": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return gdf


