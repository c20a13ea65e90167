"""Read a file of ACI funding rules: the one shipped in the package, or a planner's own copy.

The file is JSON (see ``cpts_geo/data/aci_rules.json`` and :mod:`cpts_geo.analysis.aci` for
its schema); this module only turns bytes into a dict, with errors naming the file. Checking the
content is :func:`cpts_geo.analysis.aci.parse_rules`'s job.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from .._data import bundle_path
from ..errors import InputError

__all__ = ["RULES_FILE", "read_aci_rules"]

#: Name of the rules file shipped in ``cpts_geo/data/``.
RULES_FILE = "aci_rules.json"

#: A rules file larger than this is not a rules file (the shipped one is about 50 kB).
MAX_BYTES = 5_000_000


@lru_cache(maxsize=1)
def _shipped() -> str:
    return bundle_path(RULES_FILE).read_text(encoding="utf-8")


def read_aci_rules(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The content of an ACI rules file, as a dict (a new one at each call).

    Parameters
    ----------
    path : str or path-like, optional
        A JSON rules file; default: the one shipped in the package.

    Returns
    -------
    dict

    Raises
    ------
    InputError
        If the file is not JSON or not an object (naming the file).
    FileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    >>> read_aci_rules()["versions"][0]["id"]
    'aci-2019'
    """
    if path is None:
        text, name = _shipped(), RULES_FILE
    else:
        p = Path(path)
        if p.is_file() and p.stat().st_size > MAX_BYTES:
            raise InputError(f"{p}: {p.stat().st_size:,} bytes is too large for an ACI rules "
                             f"file (at most {MAX_BYTES:,})")
        text, name = p.read_text(encoding="utf-8"), str(p)
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{name}: not a JSON rules file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{name}: an ACI rules file is a JSON object, not a "
                         f"{type(data).__name__}")
    return data
