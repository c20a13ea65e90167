"""The one HTTP client of cpts_geo: GET with timeouts, retries, backoff and body checks.

Transient failures (connection errors, timeouts, truncated bodies, HTTP 429 and 5xx) are retried
with exponential backoff, honouring ``Retry-After``; other HTTP errors are not. Failures raise
:class:`~cpts_geo.errors.DataSourceError` naming the URL, with secrets masked.

Every download is bounded: in time by a deadline that covers all its attempts (the read timeout
alone bounds each wait for data, so a server sending a byte now and then would hold it for ever),
and in size, as received and once decompressed (:class:`~cpts_geo.errors.ResourceLimitError`,
stating the limit), reading and decompressing piece by piece so that a small answer that expands
to gigabytes is refused before it fills the memory.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
import urllib3
from tqdm.auto import tqdm

from ..errors import DataSourceError, ResourceLimitError

__all__ = ["HttpClient"]

# --- Tunables (module level so that tests can make them tiny) -----------------------------------
#: First wait between two attempts, in seconds; attempt n waits ``_BACKOFF_BASE * 2**n``.
_BACKOFF_BASE = 1.0
#: Longest wait between two attempts (also caps ``Retry-After``), in seconds.
_BACKOFF_MAX = 60.0
#: Longest time one download may take by default (every attempt and wait), in seconds.
DEFAULT_DEADLINE = 120.0
#: Largest answer accepted by default, as received and once decompressed, in bytes (256 MiB;
#: the memory an answer may take is of this order; ``max_bytes`` raises it).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: Most bytes read from the socket at once.
_READ_SIZE = 1 << 16
#: How long the calling thread waits for a worker past the deadline (it stops itself first).
_DEADLINE_GRACE = 0.5
_sleep: Callable[[float], None] = time.sleep

_SECRET_PARAM_RE = re.compile(r"key|token|secret|passw|signature|auth", re.IGNORECASE)


class _DeadlineError(Exception):
    """The deadline of a download passed."""


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
    """GET with timeouts, a deadline, size limits, retries and body checks.

    Parameters
    ----------
    session : requests.Session or None
        The caller's session, or None for a private one (closed by :meth:`close`).
    timeout : float
        Connect timeout, and longest wait for any piece of the answer, in seconds.
    retries : int
        Attempts after the first one for transient failures.
    deadline : float
        Longest time one download may take, in seconds, every attempt and wait included.
    max_bytes : int
        Largest answer accepted, in bytes, both as received and once decompressed.
    """

    def __init__(
        self,
        *,
        session: requests.Session | None,
        timeout: float,
        retries: int,
        deadline: float = DEFAULT_DEADLINE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        self._own = session is None
        self.session = session if session is not None else requests.Session()
        if self._own:
            self.session.headers["User-Agent"] = (
                f"cpts_geo (python-requests/{requests.__version__})"
            )
        self.timeout = timeout
        self.retries = retries
        self.deadline = deadline
        self.max_bytes = max_bytes

    def close(self) -> None:
        """Close the session if this client opened it."""
        if self._own:
            self.session.close()

    def get(self, url: str, params: Mapping[str, str | int]) -> tuple[bytes, str]:
        """Return the body of a successful GET and the (redacted) URL that was fetched."""
        full = requests.Request("GET", url, params=dict(params)).prepare().url or url
        shown = _redact_url(full)
        attempts = self.retries + 1
        until = time.monotonic() + self.deadline
        problem = ""
        made = 0
        for attempt in range(attempts):
            wait: float | None = None
            made += 1
            try:
                body = self._attempt_within(url, params, shown, until)
            except _RetryableError as exc:
                problem = exc.message
                wait = exc.wait
            except _DeadlineError:
                problem = self._deadline_problem()
                break
            except (requests.Timeout, urllib3.exceptions.TimeoutError):
                problem = f"no answer within {self.timeout:g} s (timeout)"
            except (requests.exceptions.SSLError, urllib3.exceptions.SSLError) as exc:
                raise DataSourceError(  # not transient: do not retry
                    f"TLS/SSL failure for {shown} ({_connection_reason(exc)}); check the "
                    "certificates or the proxy (pass a configured `session`)"
                ) from exc
            except requests.ConnectionError as exc:
                if "timed out" in str(exc).lower():
                    problem = f"no answer within {self.timeout:g} s (timeout)"
                else:
                    problem = f"connection failed ({_connection_reason(exc)})"
            except (requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError,
                    urllib3.exceptions.HTTPError) as exc:
                problem = _broken_body(exc)
            except requests.RequestException as exc:
                raise DataSourceError(f"request to {shown} failed: {_short_exc(exc)}") from exc
            else:
                return body, shown
            if attempt + 1 < attempts:
                pause = wait if wait is not None else _backoff(attempt)
                if time.monotonic() + pause >= until:
                    problem += (f"; the next attempt would start after the deadline of "
                                f"{self.deadline:g} s (`deadline`)")
                    break
                _sleep(pause)
        raise DataSourceError(
            f"could not download {shown}: {problem}; gave up after {made} "
            f"attempt{'s' if made > 1 else ''}"
        )

    def _deadline_problem(self) -> str:
        return (
            f"no complete answer within the deadline of {self.deadline:g} s for one download "
            "(`deadline`: the server is too slow or sends its answer drop by drop; pass a "
            "larger `deadline` for a slow connection)"
        )

    def _attempt_within(
        self, url: str, params: Mapping[str, str | int], shown: str, until: float
    ) -> bytes:
        """Run one attempt in a worker thread and give up on it at the deadline.

        The read timeout bounds each wait for data, not the whole answer: a server that sends a
        byte now and then (in the headers or the body) would hold a plain request for ever. The
        worker stops reading the body as soon as it sees the deadline has passed; a worker stuck
        in the headers is abandoned (a daemon thread, ended by the read timeout when the server
        stops or the process exits).
        """
        if time.monotonic() >= until:
            raise _DeadlineError
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                outcome["body"] = self._attempt(url, params, shown, until)
            except BaseException as exc:  # handed to the calling thread
                outcome["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=work, name="cpts_geo-download", daemon=True)
        worker.start()
        if not done.wait(max(0.0, until - time.monotonic()) + _DEADLINE_GRACE):
            raise _DeadlineError
        if "error" in outcome:
            raise outcome["error"]
        body: bytes = outcome["body"]
        return body

    def _attempt(
        self, url: str, params: Mapping[str, str | int], shown: str, until: float
    ) -> bytes:
        headers = {
            "Accept": "application/geo+json, application/json;q=0.9, */*;q=0.1",
            "Accept-Encoding": "gzip, deflate",  # the encodings _Inflater decodes
        }
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
                try:  # the start of the error page, for the message
                    body = _Inflater(resp.headers.get("Content-Encoding"), shown, 4096).feed(
                        resp.raw.read1(2048, decode_content=False))
                except Exception:  # an unreadable error page: the status says enough
                    body = b""
                raise DataSourceError(
                    f"{shown} answered HTTP {status} {resp.reason or ''}".rstrip()
                    + (f": {_snippet(body)}" if body.strip() else "")
                )
            return self._read_body(resp, shown, until)

    def _read_body(self, resp: requests.Response, shown: str, until: float) -> bytes:
        """Read the body piece by piece, counting bytes and watching the deadline."""
        inflater = _Inflater(resp.headers.get("Content-Encoding"), shown, self.max_bytes)
        raw = resp.raw
        received = 0
        parts: list[bytes] = []
        while True:
            if time.monotonic() >= until:
                raise _DeadlineError
            piece = raw.read1(_READ_SIZE, decode_content=False)
            if not piece:
                break
            received += len(piece)
            if received > self.max_bytes:
                raise self._too_large(shown, "as received")
            parts.append(inflater.feed(piece))
        announced = resp.headers.get("Content-Length", "").strip()
        if announced.isdigit() and received != int(announced):
            raise _RetryableError(
                f"truncated body: received {received} of the {announced} bytes announced by "
                "Content-Length"
            )
        inflater.finish()
        return b"".join(parts)

    def _too_large(self, shown: str, how: str) -> ResourceLimitError:
        return ResourceLimitError(
            f"the answer of {shown} is larger than the limit of {_size(self.max_bytes)} "
            f"{how} (`max_bytes`={self.max_bytes}); a compressed answer that grows this much is "
            "most likely broken or hostile; if the service really sends that much, pass a larger "
            "`max_bytes` to cpts_geo.fetch_communes"
        )

    def get_json(self, url: str, params: Mapping[str, str | int]) -> tuple[Any, str]:
        """GET and parse JSON; an unparsable body is an error, never a partial result.

        ``NaN`` and ``Infinity`` (not JSON, but accepted by Python's parser) are refused, and so
        is JSON nested deeper than Python can read.
        """
        body, shown = self.get(url, params)
        try:
            return json.loads(body, parse_constant=_refuse_constant), shown
        except RecursionError as exc:
            raise DataSourceError(
                f"{shown} sent JSON nested too deeply to be read ({len(body)} bytes): not the "
                "GeoJSON of communes"
            ) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            if b"ExceptionReport" in body[:4096]:
                kind = "an OGC exception report instead of GeoJSON"
            elif body.lstrip()[:1] == b"<":
                kind = "an HTML or XML page instead of GeoJSON"
            else:
                kind = "invalid JSON"
            raise DataSourceError(
                f"{shown} sent {kind} ({len(body)} bytes; {_short_exc(exc)}): {_snippet(body)!r}"
            ) from exc


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _size(n: int) -> str:
    """``268435456`` -> ``"256 MiB"``: a byte count for messages."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n} bytes"


class _Inflater:
    """Decode a ``gzip`` or ``deflate`` body piece by piece, never beyond ``limit`` bytes.

    Decompression is bounded as it happens (``zlib``'s ``max_length``), so a small answer that
    would expand to gigabytes is refused after ``limit`` bytes, not after filling the memory.
    """

    def __init__(self, encoding: str | None, shown: str, limit: int):
        self.encoding = (encoding or "").strip().lower()
        self.shown = shown
        self.limit = limit
        self.produced = 0
        self._first = True
        if self.encoding in ("", "identity"):
            self._zlib: Any = None
        elif self.encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise DataSourceError(
                f"{shown} sent its answer with the unsupported Content-Encoding "
                f"{self.encoding!r} (asked for gzip or deflate)"
            )

    def _count(self, data: bytes) -> bytes:
        self.produced += len(data)
        if self.produced > self.limit:
            raise ResourceLimitError(
                f"the answer of {self.shown} is larger than the limit of {_size(self.limit)} "
                f"once decompressed (`max_bytes`={self.limit}); a compressed answer that grows "
                "this much is most likely broken or hostile; if the service really sends that "
                "much, pass a larger `max_bytes` to cpts_geo.fetch_communes"
            )
        return data

    def feed(self, data: bytes) -> bytes:
        """Decode ``data`` (the next piece of the body)."""
        if self._zlib is None:
            return self._count(data)
        out: list[bytes] = []
        while data:
            try:
                piece = self._zlib.decompress(data, self.limit - self.produced + 1)
            except zlib.error as exc:
                if self._first and self.encoding == "deflate":
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
                    self._first = False
                    continue
                raise _RetryableError(f"undecodable ({self.encoding}) body ({exc})") from exc
            self._first = False
            out.append(self._count(piece))
            if self._zlib.unconsumed_tail:
                data = self._zlib.unconsumed_tail
            elif self._zlib.eof and self._zlib.unused_data.strip(b"\x00"):
                data = self._zlib.unused_data  # another gzip member follows
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> None:
        """Check that the compressed stream ended (a cut stream is a truncated body)."""
        if self._zlib is not None and not self._zlib.eof:
            raise _RetryableError(f"truncated body: the {self.encoding} stream is cut short")


def _broken_body(exc: Exception) -> str:
    """Describe a body cut off by the network (urllib3 ``IncompleteRead``) or undecodable."""
    match = re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", str(exc))
    if match:
        got, more = int(match.group(1)), int(match.group(2))
        return (
            f"truncated body: received {got} of the {got + more} bytes announced by "
            "Content-Length"
        )
    if isinstance(exc, requests.exceptions.ContentDecodingError | urllib3.exceptions.DecodeError):
        return f"undecodable (compressed) body ({_short_exc(exc)})"
    return f"truncated body, connection broken ({_short_exc(exc)})"


def _connection_reason(exc: Exception) -> str:
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

