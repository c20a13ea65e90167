"""What the ACI rules give each CPTS: its size class and the amounts sources establish for it.

The amounts are those of the version of the agreement in force at the CPTS's status date (the
latest version when it has none); each row says which version, why, and from which sources. An
amount that no source establishes for that version and class stays empty: a real contract
depends on the missions a CPTS takes on and the objectives it meets, so these are the rules'
amounts (a yearly maximum, the operating budget), not what a CPTS receives.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ..errors import InputError, public
from ..io.rules import read_aci_rules
from ..typing import DateLike
from .aci import AciRules, default_rules, parse_rules, size_class, size_class_basis
from .inputs import Prepared, prepare
from .rates import cpts_figures

__all__ = ["FUNDING_COLUMNS", "aci_funding", "funding_figures", "resolve_rules"]

#: Columns of :func:`aci_funding` before the amounts (one ``<item>_eur`` column per item of the
#: rules that has an amount in some version) and after them.
FUNDING_COLUMNS = ("cpts", "cpts_id", "status", "status_date", "departements", "population",
                   "size_class", "size_class_basis", "rules_version", "version_basis")
TAIL_COLUMNS = ("derived", "not_established", "sources")

Rules = AciRules | Mapping[str, Any] | str | os.PathLike[str] | None


def resolve_rules(rules: Rules) -> AciRules:
    """Rules given as parsed rules, a dict, a JSON file, or None (the shipped file)."""
    if rules is None:
        return default_rules()
    if isinstance(rules, AciRules):
        return rules
    if isinstance(rules, Mapping):
        return parse_rules(rules, name="rules")
    if isinstance(rules, str | os.PathLike):
        return parse_rules(read_aci_rules(rules), name=os.fspath(rules))
    raise InputError(f"`rules` was a {type(rules).__name__}; expected None (the shipped rules), "
                     "a path to a JSON rules file, or its content as a dict")


def amount_items(rules: AciRules) -> list[str]:
    """Items of the rules that have an amount in some version, in the rules' order."""
    present = {a.item for v in rules.versions for a in v.amounts}
    return [item for item in rules.items if item in present]


def funding_figures(p: Prepared, rules: AciRules) -> pd.DataFrame:
    """Each CPTS of prepared inputs with its size class and amounts (see :func:`aci_funding`)."""
    table = p.memo("cpts_figures", cpts_figures)
    items = amount_items(rules)
    rows: list[dict[str, Any]] = []
    for r in table.to_dict("records"):
        version, why = rules.version_at(r["status_date"])
        classes = version.size_classes if version is not None else rules.latest.size_classes
        taille = size_class(r["population"], classes)
        row: dict[str, Any] = {
            "cpts": r["cpts"], "cpts_id": r["cpts_id"], "status": r["status"],
            "status_date": r["status_date"], "departements": r["departements"],
            "population": r["population"],
            "size_class": taille, "size_class_basis": size_class_basis(r["population"], rules),
            "rules_version": None if version is None else version.id, "version_basis": why,
        }
        derived, absent, sources = [], [], []
        for item in items:
            found = None if version is None else version.amount(item, taille)
            row[f"{item}_eur"] = np.nan if found is None else found.amount_eur
            if found is None:
                absent.append(item)
                continue
            if found.basis == "derived":
                derived.append(item)
            if found.source not in sources:
                sources.append(found.source)
        row["derived"] = ", ".join(derived)
        row["not_established"] = ", ".join(absent)
        row["sources"] = " | ".join(rules.source_text(s) for s in sources)
        rows.append(row)
    columns = [*FUNDING_COLUMNS, *(f"{i}_eur" for i in items), *TAIL_COLUMNS]
    out = pd.DataFrame(rows, columns=columns)
    out["size_class"] = out["size_class"].astype("Int64")
    out["status"] = pd.Categorical(out["status"], dtype=table["status"].dtype)
    out["status_date"] = pd.to_datetime(out["status_date"]).astype("datetime64[ns]")
    for item in items:
        out[f"{item}_eur"] = out[f"{item}_eur"].astype(float)
    out.attrs = {**p.attrs, "rules_id": rules.rules_id, "rules_source": rules.name}
    return out


@public
def aci_funding(
    communes: gpd.GeoDataFrame,
    territories: pd.DataFrame,
    *,
    rules: Rules = None,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> pd.DataFrame:
    """What the ACI funding rules give each CPTS for its size class, with their sources.

    The amounts are those of the version of the agreement in force at the CPTS's status date
    (the ACI of 20 June 2019 from 25 August 2019; avenant 2 of 20 December 2021 from the
    publication of its approval, 31 March 2022, a convention since no source gives its entry
    into force), or of the latest version for a CPTS without a status date; ``version_basis``
    says which case applies. Amounts no source establishes for that version and class are
    empty (NaN), never guessed; they are listed in ``not_established``. These are the rules'
    amounts (the operating budget, a yearly maximum...), not a CPTS's contract, which depends
    on the missions it takes on and the objectives it meets.

    A CPTS's population covers all its communes (missing ones are loaded from the source and
    vintage of ``communes``, with a warning), as in :func:`cpts_geo.cpts_table`; its size class
    is that of this population, which may differ from the one its contract was signed with
    (another census).

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`).
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    rules : path, dict or AciRules, optional
        The rules; default: the file shipped in the package (``cpts_geo/data/aci_rules.json``),
        whose amounts each name their source (title, date, URL, quote).
    as_of, statuses
        Filters, as in :func:`cpts_geo.coverage`.

    Returns
    -------
    pandas.DataFrame
        One row per CPTS, by name: ``cpts``, ``cpts_id``, ``status``, ``status_date``,
        ``departements`` (comma-separated), ``population``, ``size_class``,
        ``size_class_basis`` (how a population exactly at a class bound was placed: "derived"
        at 40,000 and 175,000, "convention" at 80,000; "" elsewhere), ``rules_version``,
        ``version_basis``; one ``<item>_eur`` column per item of the rules with an amount in
        some version (``fonctionnement_eur``, ``mission_acces_aux_soins_eur``,
        ``mission_parcours_eur``, ``mission_prevention_eur``, ``mission_crise_sanitaire_eur``,
        ``max_annual_total_eur``); ``derived`` (items whose amount is our reading of a
        published range, not a figure printed for that class), ``not_established`` (items
        without an amount), ``sources`` (each source of the amounts given: title — publisher —
        date — URL, joined by " | "). ``attrs`` carries the vintage of ``communes``,
        ``rules_id`` and ``rules_source``.

    See Also
    --------
    cpts_geo.size_class : the size class of a population, and the convention at the bounds.
    cpts_geo.cpts_table : the other figures of each CPTS.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": "Sud-Est Grenoblois", "status": "ACI signé",
    ...                   "status_date": "2020-07-09",
    ...                   "insee": ["38421", "38158", "38309", "38179", "38533"]})
    >>> f = aci_funding(load_communes("38"), t)
    >>> f[["size_class", "rules_version", "fonctionnement_eur", "max_annual_total_eur"]
    ...   ].values.tolist()
    [[2, 'aci-2019', 60000.0, 287000.0]]
    """
    parsed = resolve_rules(rules)
    p = prepare(communes, territories, as_of=as_of, statuses=statuses, whole_cpts=True,
                needed=("insee", "population", "departement"))
    return funding_figures(p, parsed)
