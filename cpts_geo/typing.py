"""Type aliases shared by the public API (for type checkers and for the documentation).

Examples
--------
>>> from cpts_geo.typing import Level
>>> from typing import get_args
>>> get_args(Level)
('departement', 'region', 'nation')
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Literal, TypeAlias

__all__ = [
    "Codes",
    "DateLike",
    "Level",
    "OutputFormat",
    "Respect",
    "Source",
]

#: One code (``"42"``, ``42``, ``"2A"``, a name such as ``"Loire"`` for a département) or
#: several. A ``str`` is always *one* code: ``"42"`` is the Loire, never ``"4"`` and ``"2"``.
Codes: TypeAlias = str | int | Iterable[str | int]

#: A date: ``datetime.date``/``datetime``/``pandas.Timestamp``, or text in ISO
#: (``2020-07-09``), French (``09/07/2020``, day first) or words (``9 juillet 2020``).
DateLike: TypeAlias = str | _dt.date | _dt.datetime

#: The areas a coverage table can be computed for.
Level: TypeAlias = Literal["departement", "region", "nation"]

#: Where reference communes come from: the bundle shipped in the package (offline), the API
#: Découpage administratif (geo.api.gouv.fr) or the IGN Géoplateforme WFS.
Source: TypeAlias = Literal["bundled", "geo-api", "ign"]

#: Formats of the command line's tables.
OutputFormat: TypeAlias = Literal["table", "csv", "json", "geojson", "xlsx"]

#: Which boundaries a proposal of new CPTS follows where the population bounds allow.
Respect: TypeAlias = Literal["epci"] | None
