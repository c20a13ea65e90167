"""Small text helpers shared by every layer: accent folding and whitespace."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold", "squash_spaces"]

_SPACES = re.compile(r"[\s\u00a0\u202f]+")


def fold(text: str) -> str:
    """Lower case without accents: ``"Isère"`` -> ``"isere"``, ``"Œuf"`` -> ``"oeuf"``.

    Examples
    --------
    >>> fold("Côtes-d'Armor"), fold("ŒUVRE")
    ("cotes-d'armor", 'oeuvre')
    """
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return text.replace("œ", "oe").replace("æ", "ae")


def squash_spaces(text: str) -> str:
    """Collapse runs of spaces (no-break ones included) to one space and strip the ends.

    Examples
    --------
    >>> squash_spaces("  Saint\u00a0 Chamond ")
    'Saint Chamond'
    """
    return _SPACES.sub(" ", str(text)).strip()
