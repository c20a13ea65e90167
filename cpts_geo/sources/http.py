"""The one HTTP client of cpts_geo: GET with timeouts, retries, backoff and body checks.

Transient failures (connection errors, timeouts, truncated bodies, HTTP 429 and 5xx) are retried
with exponential backoff, honouring ``Retry-After``; other HTTP errors are not. Failures raise
:class:`~cpts_geo.errors.DataSourceError` naming the URL, with secrets masked.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from tqdm.auto import tqdm

from ..errors import DataSourceError

__all__ = ["HttpClient"]

# --- Tunables (module level so that tests can make them tiny) -----------------------------------
#: First wait between two attempts, in seconds; attempt n waits ``_BACKOFF_BASE * 2**n``.
_BACKOFF_BASE = 1.0
#: Longest wait between two attempts (also caps ``Retry-After``), in seconds.
_BACKOFF_MAX = 60.0
#: WFS page size (``COUNT``).
_sleep: Callable[[float], None] = time.sleep

_SECRET_PARAM_RE = re.compile(r"key|token|secret|passw|signature|auth", re.IGNORECASE)


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


class HttpClient:
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
        """Close the session if this client opened it."""
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

