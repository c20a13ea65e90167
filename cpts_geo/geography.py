"""The administrative geography of France that every layer needs.

Départements, régions, the municipal arrondissements of Paris, Lyon and Marseille, and the
projections used for areas.

The tables come from the bundle's manifest (COG 2026, written by ``scripts/build_reference.py``),
so this module reads no Parquet file and imports neither pandas nor geopandas.

:func:`normalize_departements` is the one place where a user's département codes are read: a
``str`` is always one département (``"42"``, never ``"4"`` and ``"2"``), names are accepted
(``"Loire"``, ``"Côtes-d'Armor"``), and so are the forms spreadsheets produce (``1``, ``"1.0"``,
``"042"``, ``"2a"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from ._data import manifest
from ._text import fold
from .errors import InputError

__all__ = [
    "LOCAL_CRS",
    "METRO_CRS",
    "Departement",
    "arrondissements",
    "city_of_arrondissement",
    "departement_name",
    "departement_of",
    "departements",
    "departements_of_region",
    "local_crs",
    "normalize_departement",
    "normalize_departements",
    "normalize_region",
    "normalize_regions",
    "region_name",
    "regions",
]

#: Projected CRS for areas and lengths in metropolitan France and Corsica: Lambert-93.
METRO_CRS = 2154
#: The official projection of each overseas département (never Lambert-93 overseas): RGAF09 UTM
#: 20N for the Antilles, RGFG95 UTM 22N for Guyane, RGR92 UTM 40S for La Réunion, RGM04 UTM 38S
#: for Mayotte.
LOCAL_CRS: Mapping[str, int] = {"971": 5490, "972": 5490, "973": 2972, "974": 2975, "976": 4471}
#: Codes of the collectivités d'outre-mer (no CPTS there, outside the scope of the library).
OVERSEAS_COLLECTIVITIES = ("975", "977", "978", "98")


@dataclass(frozen=True)
class Departement:
    """A département of the COG.

    Attributes
    ----------
    code : str
        INSEE code (``"01"``, ``"2A"``, ``"974"``).
    nom : str
        Name (``"Loire"``).
    region : str
        Code of its région.
    n_communes : int
        Number of communes (Paris, Lyon, Marseille counted once).
    n_units_arrondissements : int
        Number of units when Paris, Lyon and Marseille are split into arrondissements.
    """

    code: str
    nom: str
    region: str
    n_communes: int
    n_units_arrondissements: int


@lru_cache(maxsize=1)
def departements() -> dict[str, Departement]:
    """The 101 départements, by code.

    Examples
    --------
    >>> d = departements()["42"]
    >>> d.nom, d.region, d.n_communes
    ('Loire', '84', 320)
    """
    table = manifest()["geography"]["departements"]
    return {code: Departement(code, **info) for code, info in table.items()}


@lru_cache(maxsize=1)
def regions() -> dict[str, str]:
    """The 18 régions: code -> name.

    Examples
    --------
    >>> regions()["93"]
    "Provence-Alpes-Côte d'Azur"
    """
    return dict(manifest()["geography"]["regions"])


@lru_cache(maxsize=1)
def arrondissements() -> dict[str, tuple[str, ...]]:
    """Paris, Lyon and Marseille (city code) -> the codes of their municipal arrondissements.

    Examples
    --------
    >>> {city: len(codes) for city, codes in arrondissements().items()}
    {'13055': 16, '69123': 9, '75056': 20}
    """
    table = manifest()["geography"]["arrondissements"]
    return {city: tuple(codes) for city, codes in table.items()}


@lru_cache(maxsize=1)
def city_of_arrondissement() -> dict[str, str]:
    """Municipal arrondissement code -> city code (``"69383"`` -> ``"69123"``)."""
    return {a: city for city, codes in arrondissements().items() for a in codes}


def departement_name(code: str) -> str:
    """Name of a (normalised) département code.

    Examples
    --------
    >>> departement_name("38")
    'Isère'
    """
    return departements()[code].nom


def region_name(code: str) -> str:
    """Name of a (normalised) région code.

    Examples
    --------
    >>> region_name("84")
    'Auvergne-Rhône-Alpes'
    """
    return regions()[code]


@lru_cache(maxsize=32)
def departements_of_region(code: str) -> tuple[str, ...]:
    """Départements of a (normalised) région code, sorted.

    Examples
    --------
    >>> departements_of_region("94")
    ('2A', '2B')
    """
    return tuple(sorted(d.code for d in departements().values() if d.region == code))


def departement_of(insee: str) -> str:
    """Département of a normalised INSEE code: its first two characters, three overseas.

    Examples
    --------
    >>> departement_of("42218"), departement_of("2A004"), departement_of("97411")
    ('42', '2A', '974')
    """
    return insee[:3] if insee.startswith("97") else insee[:2]


def local_crs(departement: str) -> int:
    """EPSG code of the projection used for areas and lengths in a département.

    Examples
    --------
    >>> local_crs("42"), local_crs("974")
    (2154, 2975)
    """
    return LOCAL_CRS.get(departement, METRO_CRS)


# ---------------------------------------------------------------------------------------------
# Reading codes as users write them
# ---------------------------------------------------------------------------------------------
def _name_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", fold(text)).split())


@lru_cache(maxsize=1)
def _departement_names() -> dict[str, str]:
    return {_name_key(d.nom): d.code for d in departements().values()}


@lru_cache(maxsize=1)
def _region_names() -> dict[str, str]:
    return {_name_key(nom): code for code, nom in regions().items()}


def _code_text(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"{what} {value!r} is not a code: give a string such as '42'")
    if isinstance(value, float):
        if not value.is_integer():
            raise InputError(f"{what} {value!r} is not a code")
        value = int(value)
    text = str(value).strip().upper()
    if re.fullmatch(r"\d+\.0+", text):  # read from a spreadsheet as a number
        text = text.split(".")[0]
    return text


def normalize_departement(value: object) -> str:
    """Read one département as a user writes it: ``1``, ``"1.0"``, ``"042"``, ``"2a"``, ``"Loire"``.

    Parameters
    ----------
    value : str or int
        A code (as INSEE writes it, with its leading zero lost or doubled) or a name (case,
        accents, hyphens and apostrophes ignored).

    Returns
    -------
    str
        The INSEE code (``"01"``, ``"2A"``, ``"974"``).

    Raises
    ------
    InputError
        If the value is no département, with a hint for common mistakes (``20`` for Corsica,
        an overseas collectivity, several codes in one string).

    Examples
    --------
    >>> normalize_departement(1), normalize_departement("042"), normalize_departement("2a")
    ('01', '42', '2A')
    >>> normalize_departement("Isère"), normalize_departement("cotes d'armor")
    ('38', '22')
    """
    text = _code_text(value, "département")
    known = departements()
    if text in known:
        return text
    if text.isdigit() and len(text) == 1:
        text = "0" + text
    elif re.fullmatch(r"0\d\d|0[12][AB]", text) and text[1:] in known:  # "042", "02A"
        text = text[1:]
    if text in known:
        return text
    by_name = _departement_names().get(_name_key(text))
    if by_name is not None:
        return by_name
    hint = ""
    if text == "20":
        hint = " Corsica is split into '2A' (Corse-du-Sud) and '2B' (Haute-Corse)."
    elif text.startswith(OVERSEAS_COLLECTIVITIES):
        hint = " Overseas collectivities (975, 977, 978, 98x) have no CPTS and are not served."
    elif re.search(r"[,;/ ]", text.strip()) and not re.search(r"[A-Z]{3}", text):
        hint = " To give several départements pass a list, e.g. ['42', '43']."
    raise InputError(
        f"département {value!r} is not a département: write its code as INSEE does, two "
        "characters in metropolitan France ('01' to '95', '2A', '2B') or three overseas ('971' "
        f"to '974', '976'), or its name, e.g. '42' or 'Loire'.{hint}"
    )


def normalize_departements(value: object, *, what: str = "departements") -> list[str] | None:
    """Read one or several départements; a ``str`` is always one département.

    Parameters
    ----------
    value : str, int, iterable of them, or None
        ``"42"``, ``42``, ``"Loire"``, ``["42", "69"]``... None means "no restriction".
    what : str
        The argument's name, for messages.

    Returns
    -------
    list of str or None
        Codes in the order given, without repeats; None for None.

    Raises
    ------
    InputError
        If an item is no département, or the iterable is empty.

    Examples
    --------
    >>> normalize_departements("42")
    ['42']
    >>> normalize_departements(["Rhône", 42, "69"])
    ['69', '42']
    """
    items = _items(value, what, "a département code or name")
    return None if items is None else list(dict.fromkeys(normalize_departement(v)
                                                         for v in items))


def _items(value: object, what: str, expected: str) -> list[object] | None:
    """One code or several: a ``str`` (or number) is one item, never its characters."""
    if value is None:
        return None
    items: list[object]
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        items = list(value)
    else:
        raise InputError(f"`{what}` was {value!r}; expected {expected}, or a list of them")
    if not items:
        raise InputError(f"`{what}` is an empty list: pass None for no restriction, or codes")
    return items


def normalize_region(value: object) -> str:
    """Read one région as a user writes it: ``84``, ``"84"``, ``"Corse"``, ``"PACA"``.

    Examples
    --------
    >>> normalize_region(84), normalize_region("Bretagne"), normalize_region("paca")
    ('84', '53', '93')
    """
    text = _code_text(value, "région")
    if text.isdigit() and len(text) == 1:
        text = "0" + text
    if text in regions():
        return text
    key = _name_key(text)
    if key in ("paca", "sud", "region sud"):
        return "93"
    by_name = _region_names().get(key)
    if by_name is not None:
        return by_name
    raise InputError(
        f"région {value!r} is not a région (COG since 2016): expected one of "
        f"{', '.join(sorted(regions()))} or a name, e.g. '84' or 'Auvergne-Rhône-Alpes'"
    )


def normalize_regions(value: object, *, what: str = "regions") -> list[str] | None:
    """Read one or several régions (a ``str`` is one région); None stays None.

    Examples
    --------
    >>> normalize_regions("93"), normalize_regions(["Corse", 84])
    (['93'], ['94', '84'])
    """
    items = _items(value, what, "a région code or name")
    return None if items is None else list(dict.fromkeys(normalize_region(v) for v in items))
