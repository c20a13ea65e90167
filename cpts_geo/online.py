"""Online reference data: current communes, boundaries and populations from public web services.

Two services are supported, both free and without an API key:

``"geo-api"``
    The *API Découpage administratif* of geo.api.gouv.fr (Etalab, source code in the
    ``datagouv/api-geo`` repository). One request per département::

        GET {base}/departements/{dep}/communes
            ?fields=nom,code,codeDepartement,codeRegion,codeEpci,population
            &format=geojson&geometry=contour

    and, for the municipal arrondissements of Paris, Lyon and Marseille::

        GET {base}/communes?codeDepartement={dep}&type=arrondissement-municipal
            &fields=...&format=geojson&geometry=contour

    The routes, the ``fields``/``format``/``geometry``/``type``/``codeDepartement`` parameters and
    the property names come from the service's ``server.js``, ``lib/communeHelpers.js``,
    ``lib/helpers.js`` and ``definition.yml`` (``population`` is the *population municipale*).
    The service answers ``400`` to ``/communes?format=geojson`` without any filter, so a national
    download is made département by département. Arrondissements carry no ``codeEpci``
    (``build/communes.js`` only maps EPCI members); they inherit the EPCI of their city.

``"ign"``
    The IGN Géoplateforme WFS 2.0 (GeoServer) at ``https://data.geopf.fr/wfs/ows``, feature
    types ``ADMINEXPRESS-COG.LATEST:commune`` and
    ``ADMINEXPRESS-COG.LATEST:arrondissement_municipal`` (ADMIN EXPRESS COG, latest edition),
    GeoJSON output (``OUTPUTFORMAT=application/json``, ``SRSNAME=EPSG:4326``), paged with
    ``COUNT``/``STARTINDEX`` until ``numberMatched`` features are received, filtered with the
    GeoServer ``CQL_FILTER`` vendor parameter. Property names are those of the published
    feature-type schemas (``ignfab/gpf-schema-store``, see :data:`_IGN_COMMUNE_FIELDS`);
    ``codes_siren_des_epci`` may hold several SIREN separated by ``/`` (Grand Paris) or
    ``NR``. ``date_du_recensement`` is the census date of ``population``; INSEE legal
    populations of census year *N* are in force from 1 January *N* + 3.

Every download is checked before it is returned or cached (a FeatureCollection, every required
property, a polygonal geometry, 5-character INSEE codes, no duplicates, a plausible count), retried
on network errors, timeouts, ``429`` and ``5xx`` (honouring ``Retry-After``), and cached as a
GeoParquet file written atomically. Failures raise :class:`~cpts_geo.errors.DataSourceError`
naming the URL.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import geopandas as gpd
import pandas as pd
import platformdirs
import requests
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry
from tqdm.auto import tqdm

from ._io import atomic_path
from .errors import CptsGeoWarning, DataSourceError, InputError

__all__ = ["GEO_API_URL", "IGN_WFS_URL", "fetch_communes"]

OnlineSource = Literal["geo-api", "ign"]
Codes = str | int | Sequence[str | int] | None

#: Default base URL of the API Découpage administratif.
GEO_API_URL = "https://geo.api.gouv.fr"
#: Default endpoint of the IGN Géoplateforme WFS.
IGN_WFS_URL = "https://data.geopf.fr/wfs/ows"

_IGN_COMMUNE_TYPENAME = "ADMINEXPRESS-COG.LATEST:commune"
_IGN_ARRONDISSEMENT_TYPENAME = "ADMINEXPRESS-COG.LATEST:arrondissement_municipal"

# --- Tunables (module level so that tests can make them tiny) -----------------------------------
#: First wait between two attempts, in seconds; attempt n waits ``_BACKOFF_BASE * 2**n``.
_BACKOFF_BASE = 1.0
#: Longest wait between two attempts (also caps ``Retry-After``), in seconds.
_BACKOFF_MAX = 60.0
#: WFS page size (``COUNT``).
_WFS_PAGE_SIZE = 1000
#: Version of the cache layout; bump it to ignore older cache files.
_CACHE_VERSION = 1
#: Temporary cache files older than this (seconds) are left-overs of a killed process.
_STALE_TEMP_AGE = 3600.0
_sleep: Callable[[float], None] = time.sleep

_ENV_CACHE_DIR = "CPTS_GEO_CACHE_DIR"
_COLUMNS = ["insee", "nom", "departement", "region", "epci", "population", "geometry"]
_REQUIRED_ATTRS = ("source", "population_year", "retrieved")

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

# --- Static geography (COG since 2016; Mayotte a département since 2011) -----------------------
_REGION_DEPARTEMENTS: dict[str, tuple[str, ...]] = {
    "01": ("971",),
    "02": ("972",),
    "03": ("973",),
    "04": ("974",),
    "06": ("976",),
    "11": ("75", "77", "78", "91", "92", "93", "94", "95"),
    "24": ("18", "28", "36", "37", "41", "45"),
    "27": ("21", "25", "39", "58", "70", "71", "89", "90"),
    "28": ("14", "27", "50", "61", "76"),
    "32": ("02", "59", "60", "62", "80"),
    "44": ("08", "10", "51", "52", "54", "55", "57", "67", "68", "88"),
    "52": ("44", "49", "53", "72", "85"),
    "53": ("22", "29", "35", "56"),
    "75": ("16", "17", "19", "23", "24", "33", "40", "47", "64", "79", "86", "87"),
    "76": ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"),
    "84": ("01", "03", "07", "15", "26", "38", "42", "43", "63", "69", "73", "74"),
    "93": ("04", "05", "06", "13", "83", "84"),
    "94": ("2A", "2B"),
}
_DEPARTEMENT_REGION: dict[str, str] = {
    dep: reg for reg, deps in _REGION_DEPARTEMENTS.items() for dep in deps
}
_ALL_DEPARTEMENTS: tuple[str, ...] = tuple(sorted(_DEPARTEMENT_REGION))
#: City -> (département, its municipal arrondissements).
_PLM: dict[str, tuple[str, frozenset[str]]] = {
    "75056": ("75", frozenset(f"751{i:02d}" for i in range(1, 21))),
    "69123": ("69", frozenset(f"6938{i}" for i in range(1, 10))),
    "13055": ("13", frozenset(f"132{i:02d}" for i in range(1, 17))),
}
_PLM_BY_DEPARTEMENT = {dep: city for city, (dep, _) in _PLM.items()}
#: Collectivités d'outre-mer: no CPTS, outside the scope of this library.
_COM_PREFIXES = ("975", "977", "978", "98")
#: The Métropole du Grand Paris, the EPCI à fiscalité propre of communes that the WFS also
#: lists under their établissement public territorial.
_MGP_SIREN = "200054781"

_INSEE_RE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_SIREN_RE = re.compile(r"^\d{9}$")
_SECRET_PARAM_RE = re.compile(r"key|token|secret|passw|signature|auth", re.IGNORECASE)


# =================================================================================================
# Public API
# =================================================================================================
def fetch_communes(
    departements: Codes = None,
    regions: Codes = None,
    *,
    source: OnlineSource = "geo-api",
    arrondissements: bool = False,
    refresh: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    timeout: float = 30.0,
    retries: int = 4,
    session: requests.Session | None = None,
    progress: bool | None = None,
) -> gpd.GeoDataFrame:
    """Download the current communes with their boundary and population, with a local cache.

    Parameters
    ----------
    departements : str, int or sequence, optional
        Département codes (``"42"``, ``1`` or ``"1"`` for ``"01"``, ``"2a"`` for ``"2A"``,
        ``"974"``). Combined with ``regions`` as a union.
    regions : str, int or sequence, optional
        Région codes (``"84"`` for Auvergne-Rhône-Alpes, ``"04"`` for La Réunion). When both
        ``departements`` and ``regions`` are None, the whole of France is downloaded
        (metropolitan France and the five overseas départements).
    source : {"geo-api", "ign"}
        ``"geo-api"``: API Découpage administratif (https://geo.api.gouv.fr), one request per
        département. ``"ign"``: IGN Géoplateforme WFS (https://data.geopf.fr/wfs/ows), ADMIN
        EXPRESS COG latest edition, paged.
    arrondissements : bool
        Replace Paris (75056), Lyon (69123) and Marseille (13055) by their municipal
        arrondissements (75101-75120, 69381-69389, 13201-13216), which inherit the EPCI of their
        city.
    refresh : bool
        Download again even when a cache file exists (the cache is then replaced).
    cache_dir : str or path-like, optional
        Cache directory. Default: the environment variable ``CPTS_GEO_CACHE_DIR`` if set, else
        ``platformdirs.user_cache_dir("cpts_geo")``. There is one GeoParquet file per request set
        (source, base URL, départements, arrondissements).
    base_url : str, optional
        Another server: the API root for ``"geo-api"`` (default :data:`GEO_API_URL`), the WFS
        endpoint for ``"ign"`` (default :data:`IGN_WFS_URL`). Useful for a mirror or for tests.
    timeout : float
        Connect and read timeout of each request, in seconds.
    retries : int
        How many times a request is tried again after a connection error, a timeout, a truncated
        body, HTTP 429 or 5xx (exponential backoff, ``Retry-After`` honoured). Other HTTP errors
        are not retried.
    session : requests.Session, optional
        Session to use (proxies, certificates, adapters). Default: a new session, closed at the
        end.
    progress : bool, optional
        Show a tqdm progress bar. Default (None): only when standard error is a terminal.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, one row per commune (or arrondissement), sorted by INSEE code, with exactly the
        columns ``insee`` (5-character code), ``nom`` (official name with its article),
        ``departement``, ``region``, ``epci`` (SIREN, missing for communes outside any EPCI),
        ``population`` (``Int64`` municipal population, missing stays missing) and ``geometry``
        (valid MultiPolygon). ``attrs`` holds ``source`` (service and URL), ``population_year``
        (year the population is legally in force, None when the service does not say),
        ``census_year``, ``cog_year`` (None when unknown) and ``retrieved`` (ISO 8601 UTC time
        of the download).

    Raises
    ------
    InputError
        If a code or an argument is malformed (nothing is downloaded).
    DataSourceError
        If the service cannot be reached, answers an error, or sends an incomplete or
        inconsistent answer; the message names the URL. Nothing is cached then.

    Warns
    -----
    CptsGeoWarning
        When invalid geometries were repaired (the INSEE codes are listed), when a corrupt cache
        file was ignored, or when the cache could not be written.

    Examples
    --------
    >>> loire = fetch_communes("42", source="ign")  # doctest: +SKIP
    >>> loire.set_index("insee").loc["42110", "nom"]  # doctest: +SKIP
    "L'Horme"
    """
    if source not in ("geo-api", "ign"):
        raise InputError(
            f"`source` was {source!r} but is expected to be 'geo-api' (geo.api.gouv.fr) "
            "or 'ign' (IGN Géoplateforme WFS, ADMIN EXPRESS COG)"
        )
    _check_options(timeout=timeout, retries=retries)
    deps = _resolve_scope(departements, regions)
    base = _check_base_url(base_url if base_url is not None else _default_base(source))
    directory = _resolve_cache_dir(cache_dir)
    path = directory / _cache_name(source, base, deps, arrondissements)

    if not refresh:
        cached = _read_cache(path)
        if cached is not None:
            return cached

    show = _stderr_is_tty() if progress is None else bool(progress)
    http = _Http(session=session, timeout=float(timeout), retries=int(retries))
    try:
        if source == "geo-api":
            gdf = _fetch_geo_api(http, base, deps, arrondissements=arrondissements, show=show)
        else:
            gdf = _fetch_ign(http, base, deps, arrondissements=arrondissements, show=show)
    finally:
        http.close()
    _write_cache(path, gdf, source=source, base=base, deps=deps, arrondissements=arrondissements)
    return gdf


# =================================================================================================
# Input validation
# =================================================================================================
def _check_options(*, timeout: object, retries: object) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InputError(f"`timeout` was {timeout!r} but must be a positive number of seconds")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InputError(f"`retries` was {retries!r} but must be an integer >= 0")


def _default_base(source: str) -> str:
    return GEO_API_URL if source == "geo-api" else IGN_WFS_URL


def _check_base_url(url: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise InputError(
            f"`base_url` was {url!r} but must be an http(s) URL such as {GEO_API_URL!r} "
            f"(geo-api) or {IGN_WFS_URL!r} (ign)"
        )
    return url.rstrip("/")


def _as_list(value: Codes, name: str) -> list[str | int] | None:
    if value is None:
        return None
    if isinstance(value, str | int):
        items: list[str | int] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        items = list(value)
    else:
        raise InputError(
            f"`{name}` was {value!r} but must be a code or a list of codes, e.g. ['42', '43']"
        )
    if not items:
        raise InputError(
            f"`{name}` is an empty list: pass None for the whole of France, or some codes"
        )
    return items


def _normalize_departement(value: object) -> str:
    """Return the INSEE spelling of a département code ("1" -> "01", "2a" -> "2A")."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"département {value!r} must be a string such as '42' or '2A'")
    text = str(value).strip().upper()
    if text.endswith(".0") and text[:-2].isdigit():  # read from a spreadsheet as a number
        text = text[:-2]
    if text.isdigit() and len(text) == 1:
        text = "0" + text
    if text in _DEPARTEMENT_REGION:
        return text
    hint = ""
    if text == "20":
        hint = " Corsica is split into '2A' (Corse-du-Sud) and '2B' (Haute-Corse)."
    elif text.startswith(_COM_PREFIXES):
        hint = " Overseas collectivities (975, 977, 978, 98x) have no CPTS and are not served."
    elif "," in text or ";" in text or " " in text:
        hint = " To ask for several départements pass a list, e.g. ['42', '43']."
    raise InputError(
        f"département {value!r} is not a département code: write it as INSEE does, two "
        "characters in metropolitan France ('01' to '95', '2A', '2B'; 1 is read as '01') or "
        f"three overseas ('971' to '974', '976'), e.g. '42' for the Loire.{hint}"
    )


def _normalize_region(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"région {value!r} must be a string such as '84'")
    text = str(value).strip()
    if text.isdigit() and len(text) == 1:
        text = "0" + text
    if text not in _REGION_DEPARTEMENTS:
        raise InputError(
            f"région {value!r} is not a région code (COG since 2016); expected one of "
            f"{', '.join(sorted(_REGION_DEPARTEMENTS))}, e.g. '84' for Auvergne-Rhône-Alpes "
            "or '53' for Bretagne. Old régions (before 2016) are not accepted."
        )
    return text


def _resolve_scope(departements: Codes, regions: Codes) -> tuple[str, ...] | None:
    """Return the sorted départements asked for (union of both arguments), None for France."""
    deps = _as_list(departements, "departements")
    regs = _as_list(regions, "regions")
    if deps is None and regs is None:
        return None
    wanted: set[str] = set()
    for d in deps or []:
        wanted.add(_normalize_departement(d))
    for r in regs or []:
        wanted.update(_REGION_DEPARTEMENTS[_normalize_region(r)])
    return tuple(sorted(wanted))


# =================================================================================================
# HTTP
# =================================================================================================
class _RetryableError(Exception):
    """A transient failure of one attempt (HTTP 429/5xx, truncated body), with an optional wait."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.message = message
        self.wait = wait


def _redact_url(url: str) -> str:
    """Return ``url`` without user information and with secret-looking parameters masked."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    safe = [(k, "***" if _SECRET_PARAM_RE.search(k) else v) for k, v in query]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(safe, safe=",:'()"), ""))


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body[: limit * 4].decode("utf-8", errors="replace")
    match = re.search(r"<(?:ows:)?ExceptionText>(.*?)</(?:ows:)?ExceptionText>", text, re.S)
    if match:
        text = match.group(1)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _retry_after(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header (seconds or HTTP date) into a capped wait in seconds."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), _BACKOFF_MAX)


def _backoff(attempt: int) -> float:
    wait = _BACKOFF_BASE * (2**attempt)
    return min(wait * (1.0 + 0.1 * random.random()), _BACKOFF_MAX)


class _Http:
    """GET with timeouts, retries and body checks, on a given or private session."""

    def __init__(self, *, session: requests.Session | None, timeout: float, retries: int):
        self._own = session is None
        self.session = session if session is not None else requests.Session()
        if self._own:
            self.session.headers["User-Agent"] = (
                f"cpts_geo (python-requests/{requests.__version__})"
            )
        self.timeout = timeout
        self.retries = retries

    def close(self) -> None:
        if self._own:
            self.session.close()

    def get(self, url: str, params: Mapping[str, str | int]) -> tuple[bytes, str]:
        """Return the body of a successful GET and the (redacted) URL that was fetched."""
        full = requests.Request("GET", url, params=dict(params)).prepare().url or url
        shown = _redact_url(full)
        attempts = self.retries + 1
        problem = ""
        for attempt in range(attempts):
            wait: float | None = None
            try:
                body = self._attempt(url, params, shown)
            except _RetryableError as exc:
                problem = exc.message
                wait = exc.wait
            except requests.Timeout:
                problem = f"no answer within {self.timeout:g} s (timeout)"
            except requests.exceptions.SSLError as exc:  # not transient: do not retry
                raise DataSourceError(
                    f"TLS/SSL failure for {shown} ({_connection_reason(exc)}); check the "
                    "certificates or the proxy (pass a configured `session`)"
                ) from exc
            except requests.ConnectionError as exc:
                if "timed out" in str(exc).lower():
                    problem = f"no answer within {self.timeout:g} s (timeout)"
                else:
                    problem = f"connection failed ({_connection_reason(exc)})"
            except (requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                problem = _broken_body(exc)
            except requests.RequestException as exc:
                raise DataSourceError(f"request to {shown} failed: {_short_exc(exc)}") from exc
            else:
                return body, shown
            if attempt + 1 < attempts:
                _sleep(wait if wait is not None else _backoff(attempt))
        raise DataSourceError(
            f"could not download {shown}: {problem}; gave up after {attempts} "
            f"attempt{'s' if attempts > 1 else ''}"
        )

    def _attempt(self, url: str, params: Mapping[str, str | int], shown: str) -> bytes:
        headers = {"Accept": "application/geo+json, application/json;q=0.9, */*;q=0.1"}
        with self.session.get(
            url,
            params=dict(params),
            headers=headers,
            timeout=(self.timeout, self.timeout),
            stream=True,
        ) as resp:
            status = resp.status_code
            if status == 429 or 500 <= status <= 599:
                raise _RetryableError(
                    f"HTTP {status} {resp.reason or ''}".rstrip(),
                    _retry_after(resp.headers.get("Retry-After")),
                )
            if not 200 <= status < 300:
                try:
                    body = next(resp.iter_content(chunk_size=2048), b"")
                except requests.RequestException:
                    body = b""
                raise DataSourceError(
                    f"{shown} answered HTTP {status} {resp.reason or ''}".rstrip()
                    + (f": {_snippet(body)}" if body.strip() else "")
                )
            chunks = list(resp.iter_content(chunk_size=1 << 16))
            body = b"".join(chunks)
            announced = resp.headers.get("Content-Length", "").strip()
            if announced.isdigit():
                on_wire = len(body)
                if resp.headers.get("Content-Encoding"):
                    tell = getattr(resp.raw, "tell", None)
                    on_wire = tell() if callable(tell) else int(announced)
                if on_wire != int(announced):
                    raise _RetryableError(
                        f"truncated body: received {on_wire} of the {announced} bytes "
                        "announced by Content-Length"
                    )
            return body

    def get_json(self, url: str, params: Mapping[str, str | int]) -> tuple[Any, str]:
        """GET and parse JSON; an unparsable body is an error, never a partial result."""
        body, shown = self.get(url, params)
        try:
            return json.loads(body), shown
        except (ValueError, UnicodeDecodeError) as exc:
            if b"ExceptionReport" in body[:4096]:
                kind = "an OGC exception report instead of GeoJSON"
            elif body.lstrip()[:1] == b"<":
                kind = "an HTML or XML page instead of GeoJSON"
            else:
                kind = "invalid JSON"
            raise DataSourceError(
                f"{shown} sent {kind} ({len(body)} bytes; {exc}): {_snippet(body)!r}"
            ) from exc


def _broken_body(exc: requests.RequestException) -> str:
    """Describe a body cut off by the network (urllib3 ``IncompleteRead``) or undecodable."""
    match = re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", str(exc))
    if match:
        got, more = int(match.group(1)), int(match.group(2))
        return (
            f"truncated body: received {got} of the {got + more} bytes announced by "
            "Content-Length"
        )
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return f"undecodable (compressed) body ({_short_exc(exc)})"
    return f"truncated body, connection broken ({_short_exc(exc)})"


def _connection_reason(exc: requests.ConnectionError) -> str:
    """Return the root cause of a connection error, without urllib3's object reprs and URL."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    text = str(reason if reason is not None else exc)
    text = re.sub(r"<[^<>]*>:\s*", "", text)
    return _short_exc(Exception(text))


def _short_exc(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def _progress_bar(show: bool, total: int | None, unit: str, desc: str) -> Iterator[tqdm]:
    bar = tqdm(total=total, unit=unit, desc=desc, disable=not show, leave=False, file=sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


# =================================================================================================
# Feature checks (shared by both services)
# =================================================================================================
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


def _departement_of(insee: str) -> str:
    from .reference import departement_of

    return departement_of(insee)


def _check_departement(value: object, insee: str, shown: str) -> str:
    if not isinstance(value, str) or value not in _DEPARTEMENT_REGION:
        raise DataSourceError(f"{shown}: commune {insee} has the unknown département {value!r}")
    if _departement_of(insee) != value:
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
    return value


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
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
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
        expected = _PLM[city][1]
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


# =================================================================================================
# geo.api.gouv.fr
# =================================================================================================
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
    http: _Http,
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
            rows.extend(dep_rows)
    _check_duplicates((r["insee"] for r in rows), f"{base} (all départements)")
    source = (
        "API Découpage administratif, geo.api.gouv.fr (Etalab/DINUM): "
        f"{base}/departements/{{code}}/communes; municipal population of the COG in force"
    )
    attrs = {"source": source, "population_year": None, "census_year": None, "cog_year": None}
    return _finalize(rows, attrs, base)


# =================================================================================================
# IGN Géoplateforme WFS
# =================================================================================================
def _number_matched(doc: dict[str, Any]) -> int | None:
    for key in ("numberMatched", "totalFeatures"):
        value = doc.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _wfs_pages(
    http: _Http,
    base: str,
    typename: str,
    cql_filter: str | None,
    bar: tqdm,
) -> tuple[list[dict[str, Any]], str]:
    """Fetch every page of a WFS GetFeature; check the count against ``numberMatched``."""
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
    http: _Http,
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
    cities = [c for c, (d, _) in _PLM.items() if arrondissements and d in scope]

    with _progress_bar(show, None, "commune", "IGN Géoplateforme") as bar:
        features, shown = _wfs_pages(http, base, _IGN_COMMUNE_TYPENAME, dep_filter, bar)
        arr_features: list[dict[str, Any]] = []
        arr_shown = ""
        if cities:
            arr_filter = _cql_in(_IGN_ARRONDISSEMENT_FIELDS["parent"], cities)
            arr_features, arr_shown = _wfs_pages(
                http, base, _IGN_ARRONDISSEMENT_TYPENAME, arr_filter, bar
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
            parent = by_code.get(str(p["parent"]))
            if parent is None or p["parent"] not in cities:
                raise DataSourceError(
                    f"{arr_shown}: arrondissement {insee} belongs to {p['parent']!r}, which is "
                    "not one of the cities asked for"
                )
            found.setdefault(p["parent"], []).append(insee)
            arr_rows.append(
                {
                    "insee": insee,
                    "nom": str(p["nom"]).strip(),
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


# =================================================================================================
# Assembly
# =================================================================================================
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


# =================================================================================================
# Cache
# =================================================================================================
def _resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(_ENV_CACHE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("cpts_geo"))


def _cache_key(
    source: str, base: str, deps: tuple[str, ...] | None, arrondissements: bool
) -> dict[str, Any]:
    return {
        "version": _CACHE_VERSION,
        "source": source,
        "base_url": base,
        "departements": list(deps) if deps is not None else "all",
        "arrondissements": arrondissements,
    }


def _cache_name(
    source: str, base: str, deps: tuple[str, ...] | None, arrondissements: bool
) -> str:
    key = _cache_key(source, base, deps, arrondissements)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    if deps is None:
        label = "france"
    elif len(deps) <= 4:
        label = "-".join(deps)
    else:
        label = f"{len(deps)}deps"
    return f"communes-{source}-{label}{'-arr' if arrondissements else ''}-{digest}.parquet"


def _cache_problem(gdf: gpd.GeoDataFrame) -> str | None:
    meta = gdf.attrs.get("cpts_geo_cache")
    if not isinstance(meta, dict) or meta.get("version") != _CACHE_VERSION:
        return "it was not written by this version of cpts_geo"
    if list(gdf.columns) != _COLUMNS:
        return f"unexpected columns {list(gdf.columns)}"
    missing = [k for k in _REQUIRED_ATTRS if k not in gdf.attrs]
    if missing:
        return f"missing metadata {missing}"
    if len(gdf) == 0 or gdf["insee"].isna().any() or gdf["insee"].duplicated().any():
        return "missing or duplicated INSEE codes"
    if gdf.crs is None or gdf.crs.to_epsg() != 4326:
        return f"unexpected CRS {gdf.crs}"
    if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
        return "missing geometries"
    if str(gdf["population"].dtype) != "Int64":
        return f"population has dtype {gdf['population'].dtype}"
    return None


def _read_cache(path: Path) -> gpd.GeoDataFrame | None:
    """Return the cached frame, or None when there is none or it is unusable (with a warning)."""
    if not path.is_file():
        return None
    try:
        gdf = gpd.read_parquet(path)
        problem = _cache_problem(gdf)
    except Exception as exc:  # any reader error means a corrupt file: download again
        problem = f"{type(exc).__name__}: {_short_exc(exc)}"
    if problem is None:
        gdf.attrs.pop("cpts_geo_cache", None)
        return gdf
    warnings.warn(
        f"ignoring the corrupt cache file {path} ({problem}); downloading again",
        CptsGeoWarning,
        stacklevel=3,
    )
    try:
        path.unlink()
    except OSError:
        pass
    return None


def _remove_stale_temps(directory: Path) -> None:
    now = time.time()
    for tmp in directory.glob(".communes-*.tmp"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TEMP_AGE:
                tmp.unlink()
        except OSError:
            pass


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_cache(
    path: Path,
    gdf: gpd.GeoDataFrame,
    *,
    source: str,
    base: str,
    deps: tuple[str, ...] | None,
    arrondissements: bool,
) -> None:
    """Write ``gdf`` atomically (temporary file in the same directory, fsync, os.replace).

    A cache that cannot be written is not an error: the data is returned with a warning.
    """
    out = gdf.copy(deep=False)
    out.attrs = {
        **gdf.attrs,
        "cpts_geo_cache": _cache_key(source, base, deps, arrondissements),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path.parent)
        with atomic_path(path) as tmp:  # removed on failure, renamed on success
            out.to_parquet(tmp, index=False)
        _fsync_dir(path.parent)
    except (OSError, ValueError, TypeError) as exc:
        warnings.warn(
            f"could not write the cache file {path} ({_short_exc(exc)}); the data is returned "
            "but will be downloaded again next time",
            CptsGeoWarning,
            stacklevel=3,
        )
