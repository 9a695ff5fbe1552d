"""InfluxDB line protocol and a small synchronous client for the v1-compatible HTTP API.

One client serves both servers: InfluxDB 1.x (no auth) and 2.x (``Authorization: Token ...``
on ``/write`` and ``/query`` through the DBRP mapping). The async, batched writer the worker
uses lives in ``streams/sink.py`` and formats points with ``line`` from here.
"""

from __future__ import annotations

import gzip
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from ecgmon.errors import SinkError
from ecgmon.settings import Settings

FieldValue = float | int | str | bool

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})


def escape_measurement(name: str) -> str:
    """Escape commas and spaces in a measurement name."""
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_tag(value: str) -> str:
    """Escape commas, equals signs and spaces in a tag key or value."""
    return value.translate(_TAG_ESCAPES)


def _field(value: FieldValue) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None  # InfluxDB has no NaN/inf
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue | None], t_ms: int) -> str:
    """One point of line protocol at millisecond precision; None and non-finite fields are left out.

    Raises ``ValueError`` when no field is left, since InfluxDB rejects a point without fields.
    """
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v != "")
    rendered = [(k, _field(v)) for k, v in fields.items() if v is not None]
    field_part = ",".join(f"{escape_tag(k)}={v}" for k, v in rendered if v is not None)
    if not field_part:
        raise ValueError(f"point {measurement!r} has no finite field")
    return f"{escape_measurement(measurement)}{tag_part} {field_part} {int(t_ms)}"



def write_retriable(status: int, detail: str) -> bool:
    """Whether a write InfluxDB refused with HTTP ``status`` (body ``detail``) can succeed if sent again.

    5xx and 429 are the server's trouble; ``database not found`` is what influxd answers for a
    moment while it starts and creates the database, so it passes too. Any other 4xx is the
    points' own fault and is never retried.
    """
    return status >= 500 or status == 429 or "database not found" in detail

class InfluxClient:
    """Blocking client for ``/ping``, ``/write`` and ``/query``; used by the CLI, reports and tests."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self.base = settings.influx
        self.database = settings.influx_database
        self.timeout_s = timeout_s
        self._headers = {}
        if settings.influx_version == 2:
            self._headers["Authorization"] = f"Token {settings.influx_token.get_secret_value()}"

    def __repr__(self) -> str:  # never show the token
        return f"InfluxClient({self.base!r}, database={self.database!r})"

    def ping(self) -> bool:
        """True when the server answers ``/ping`` with 204."""
        try:
            with urllib.request.urlopen(self._request("/ping"), timeout=2.0) as resp:
                return bool(resp.status == 204)
        except (urllib.error.URLError, OSError):
            return False

    def write_lines(self, lines: Iterable[str]) -> None:
        """Write line protocol (gzip) at ms precision; ``SinkError`` says whether a retry can help."""
        body = gzip.compress("\n".join(lines).encode("utf-8"), compresslevel=1)
        query = urllib.parse.urlencode({"db": self.database, "precision": "ms"})
        req = self._request(f"/write?{query}", body, {"Content-Encoding": "gzip"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise SinkError(
                f"InfluxDB refused the write ({exc.code}): {detail}", retriable=write_retriable(exc.code, detail)
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise SinkError(f"InfluxDB at {self.base} is unreachable: {exc}.", retriable=True) from None

    def query(self, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the ``series`` of the first statement (empty list when no rows)."""
        body = urllib.parse.urlencode({"db": self.database, "q": influxql, "epoch": "ms"}).encode()
        req = self._request("/query", body, {"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise SinkError(f"InfluxDB rejected the query ({exc.code}): {detail}", retriable=False) from None
        except (urllib.error.URLError, OSError) as exc:
            raise SinkError(f"InfluxDB at {self.base} is unreachable: {exc}.", retriable=True) from None
        result = payload.get("results", [{}])[0]
        if "error" in result:
            raise SinkError(f"InfluxQL error: {result['error']}", retriable=False)
        return list(result.get("series", []))

    def count(self, influxql: str) -> int:
        """The first numeric value of a ``SELECT COUNT(...)`` query (0 when there are no rows)."""
        series = self.query(influxql)
        if not series or not series[0].get("values"):
            return 0
        return int(series[0]["values"][0][1] or 0)

    def _request(
        self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> urllib.request.Request:
        return urllib.request.Request(self.base + path, data=data, headers={**self._headers, **(headers or {})})
