"""Small text helpers shared by every layer: accent folding, whitespace, French place names."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["around", "fold", "squash_spaces"]

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


_ELIDES = re.compile(r"^[AEIOUYÀÂÄÉÈÊËÎÏÔÖÙÛÜŸŒÆ]", re.IGNORECASE)


def around(place: str) -> str:
    """``"autour de"`` and a commune name, with the French contractions and elision.

    *Le* and *Les* contract (« autour du Pont-de-Claix », « autour des Avenières »); a name
    that starts with a vowel elides *de* (« autour d'Échirolles »). A name in *H* keeps *de*:
    whether its *h* is mute cannot be read from the spelling.

    Examples
    --------
    >>> [around(n) for n in ("Voiron", "Échirolles", "Le Pont-de-Claix", "Les Avenières",
    ...                      "La Tour-du-Pin", "L'Isle-d'Abeau", "Heyrieux")]
    ... # doctest: +NORMALIZE_WHITESPACE
    ['autour de Voiron', "autour d'Échirolles", 'autour du Pont-de-Claix',
     'autour des Avenières', 'autour de La Tour-du-Pin', "autour de L'Isle-d'Abeau",
     'autour de Heyrieux']
    """
    if place.startswith("Le "):
        return f"autour du {place[3:]}"
    if place.startswith("Les "):
        return f"autour des {place[4:]}"
    if _ELIDES.match(place):
        return f"autour d'{place}"
    return f"autour de {place}"
