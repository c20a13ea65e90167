"""Published coverage claims beside the figures computed from the same perimeters.

ARS, Assurance Maladie and the FCPTS publish coverage rates and CPTS counts that disagree with
each other (81 %, 84 %, "about 90 %" for the same country). :func:`reconcile` puts each claim
beside the figure computed from a territory file, with the difference and what explains it
where it can be known: the population vintage, the statuses counted, CPTS missing from the file
or created since the claim, inhabitants counted twice where CPTS overlap, a claim that is a
forecast or an approximation. A claim whose area the file does not list completely is not
compared (a partial file would understate it); the share its CPTS cover there is given as a
floor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import InputError, public
from ..geography import (
    departement_name,
    departements_of_region,
    normalize_departements,
    normalize_regions,
    region_name,
)
from ..geography import departements as all_departements
from ..membership import parse_date
from ..sources.bundle import load_published_figures, population_years
from ..sources.loaders import load_communes
from .inputs import Prepared, prepare
from .rates import area_rates

__all__ = ["COMPARABLE_METRICS", "claims_table", "complete_areas", "reconcile"]

#: Metrics computed from a territory file; the others (targets, projects funded...) are listed
#: but not compared.
COMPARABLE_METRICS = ("coverage_rate", "n_cpts", "n_cpts_signed", "population_covered",
                      "n_communes_covered", "share_population_uncovered",
                      "population_uncovered")
_FORECAST = ("bientôt", "sera", "à terme", "prochains mois")
_SIGNED = "ACI signé"

COLUMNS = ("scope_type", "scope", "scope_name", "metric", "claimed", "qualifier", "claim_date",
           "statuses_counted", "compared", "computed", "difference", "population_year",
           "explanation", "source_title", "source_url", "quote")


def complete_areas(complete: Mapping[str, Iterable[str]] | None) -> dict[str, set[str]]:
    """Normalise the areas a territory file lists completely (a région implies its départements).

    Examples
    --------
    >>> complete_areas({"region": ["PACA"]})["departement"] == {"04", "05", "06", "13", "83", "84"}
    True
    """
    out: dict[str, set[str]] = {"departement": set(), "region": set(), "nation": set()}
    for level, codes in (complete or {}).items():
        if level == "departement":
            out[level] |= set(normalize_departements(list(codes)) or [])
        elif level == "region":  # a région listed completely: its départements are too
            regs = set(normalize_regions(list(codes)) or [])
            out[level] |= regs
            out["departement"] |= {d for r in regs for d in departements_of_region(r)}
        elif level == "nation":
            out[level] |= {"FR"} if codes else set()
        else:
            raise InputError(f"`complete` has the level {level!r}; expected 'departement', "
                             "'region' or 'nation'")
    return out


def _year_at(date: object) -> int:
    """The bundled population year in force at a claim's date (the nearest bundled one)."""
    years = population_years()
    when = _claim_date(date)
    if when is None:
        return years[0]
    return min(max(when.year, min(years)), max(years))


def _claim_date(value: object) -> pd.Timestamp | None:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    if not text:
        return None
    if len(text) == 4:
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    return parse_date(text, what="claim date")


def _fr_pct(rate: float) -> str:
    return f"{100 * rate:.1f}".replace(".", ",") + " %"


def _figures(p: Prepared, level: str, code: str) -> dict[str, float]:
    table = area_rates(p, level)  # type: ignore[arg-type]
    row = table.set_index(level).loc["France" if level == "nation" else code]
    c = p.communes
    key = (np.ones(len(c), dtype=bool) if level == "nation"
           else (c[level].astype(str) == code).to_numpy())
    ins = p.inside
    inside = ins[key[ins["pos"].to_numpy()]]
    ids = set(inside["cpts_id"])
    m = p.membership[p.membership["cpts_id"].isin(ids)]
    signed = set(m.loc[m["status"] == _SIGNED, "cpts_id"])
    # a claim that adds up CPTS populations counts the overlaps twice
    pop_in = p.population[inside["pos"].to_numpy()] * inside["share"].to_numpy()
    summed = float(pop_in.sum())
    # CPTS based here: most of their inhabitants live in the area
    here = pd.Series(pop_in, index=inside["cpts_id"].to_numpy()).groupby(level=0).sum()
    total = pd.Series(p.population[ins["pos"].to_numpy()] * ins["share"].to_numpy(),
                      index=ins["cpts_id"].to_numpy()).groupby(level=0).sum()
    based = int((here >= 0.5 * total.reindex(here.index)).sum())
    return {
        "coverage_rate": float(row["coverage_rate"]),
        "population": float(row["population"]),
        "population_covered": float(row["covered_population"]),
        "n_communes_covered": float(row["n_covered_communes"]),
        "n_cpts": float(len(ids)),
        "n_cpts_based": float(based),
        "n_cpts_signed": float(len(signed)),
        "n_with_status": float(m.groupby("cpts_id")["status"].first().notna().sum()),
        "share_population_uncovered": 1 - float(row["coverage_rate"]),
        "population_uncovered": float(row["gap_population"]),
        "rate_counting_overlaps_twice": summed / float(row["population"]),
        "overlap_population": float(row["overlap_population"]),
    }


def _explain(claim: Mapping[str, object], f: dict[str, float], computed: float,
             year: int) -> list[str]:
    metric = str(claim["metric"])
    qualifier = str(claim.get("qualifier") or "")
    statuses = str(claim.get("statuses_counted") or "")
    out = []
    if any(w in qualifier for w in _FORECAST):
        out.append(f"prévision (« {qualifier} ») : pas un constat")
    elif qualifier:
        out.append(f"chiffre approché (« {qualifier} »)")
    if metric in ("coverage_rate", "population_covered", "n_cpts", "n_communes_covered",
                  "share_population_uncovered", "population_uncovered"):
        if f["n_with_status"] < f["n_cpts"]:
            counted = "" if not statuses or statuses.startswith("unknown") else (
                f" ; la publication compte : {statuses}")
            given = ("aucun statut" if f["n_with_status"] == 0 else
                     f"le statut de {int(f['n_with_status'])} des {int(f['n_cpts'])} CPTS "
                     "seulement")
            out.append(f"le fichier ne donne {given} : toutes les CPTS listées comptent, "
                       f"quel que soit leur avancement{counted}")
        elif _SIGNED in statuses and f["n_cpts_signed"] < f["n_cpts"]:
            out.append(f"la publication compte les CPTS signataires de l'ACI : "
                       f"{int(f['n_cpts_signed'])} des {int(f['n_cpts'])} CPTS du fichier")
    if metric == "n_cpts" and f["n_cpts_based"] != f["n_cpts"]:
        out.append(f"{int(f['n_cpts'])} CPTS ont au moins une commune ici, "
                   f"{int(f['n_cpts_based'])} y ont la majorité de leurs habitants (une "
                   "publication peut compter les unes ou les autres)")
    if metric == "coverage_rate" and f["overlap_population"] > 0:
        out.append("des CPTS se chevauchent : en additionnant leurs populations on trouverait "
                   f"{_fr_pct(f['rate_counting_overlaps_twice'])} (habitants comptés deux fois)")
    out.append(f"populations légales en vigueur en {year}")
    return out


@public
def reconcile(
    communes: pd.DataFrame | None,
    territories: pd.DataFrame,
    *,
    claims: pd.DataFrame | None = None,
    complete: Mapping[str, Iterable[str]] | None = None,
    as_of: object = None,
) -> pd.DataFrame:
    """Published coverage figures beside the figures computed from the same perimeters.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame or None
        Communes (:func:`cpts_geo.load_communes`), used for the populations of the vintage they
        carry when it is the one in force at a claim's date; None (default): for each claim,
        the bundled communes of the population year in force at its date.
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`).
    claims : pandas.DataFrame, optional
        Published figures with the columns of the shipped table
        (:func:`cpts_geo.load_published_figures`, the default): ``scope_type``
        (departement, region, nation), ``scope``, ``metric``, ``value``, ``qualifier``,
        ``date``, ``statuses_counted``, ``source_title``, ``source_url``, ``quote``.
    complete : mapping, optional
        The areas the territory file lists completely (every CPTS there), e.g.
        ``{"region": ["93"]}`` for the ARS PACA listing (its départements then are too). Only
        their claims are compared.
    as_of : date, optional
        The date of the territory file (a claim made before it may count fewer CPTS).

    Returns
    -------
    pandas.DataFrame
        One row per claim: ``scope_type``, ``scope``, ``scope_name``, ``metric``, ``claimed``,
        ``qualifier``, ``claim_date``, ``statuses_counted``, ``compared`` (bool: the file lists
        the area completely and the metric can be computed), ``computed``, ``difference``
        (computed − claimed), ``population_year``, ``explanation`` (French, "; "-separated),
        ``source_title``, ``source_url``, ``quote``. For an area the file does not list
        completely, ``explanation`` gives the share of its population the file's CPTS cover
        there (a floor), and ``computed`` stays empty.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"cpts": "A", "insee": ["05061"]})
    >>> claims = pd.DataFrame({"scope_type": ["departement"], "scope": ["05"],
    ...                        "metric": ["n_cpts"], "value": [4], "date": ["2024-03"]})
    >>> r = reconcile(None, t, claims=claims, complete={"departement": ["05"]})
    >>> r[["scope", "claimed", "computed", "difference"]].values.tolist()
    [['05', 4.0, 1.0, -3.0]]
    """
    claims = load_published_figures() if claims is None else claims
    full = complete_areas(complete)
    newest = population_years()[0]
    cache: dict[int, Prepared] = {}

    def prepared_at(year: int, departements: set[str]) -> Prepared:
        if year not in cache:
            if year == newest:  # the floors need all of France: one national computation
                base = (communes if communes is not None
                        and communes.attrs.get("population_year") == year
                        else load_communes(year=year))
                cache[year] = prepare(base, territories, whole="nation")
            else:
                base = load_communes(sorted(departements), year=year)
                cache[year] = prepare(base, territories, whole="departement")
        return cache[year]

    return claims_table(claims, prepared_at, full, as_of)


def claims_table(
    claims: pd.DataFrame,
    prepared_at: Callable[[int, set[str]], Prepared],
    full: dict[str, set[str]],
    as_of: object = None,
) -> pd.DataFrame:
    """:func:`reconcile` with prepared inputs given by year (the publisher passes its own).

    ``prepared_at(year, departements)`` returns inputs prepared with the populations in force
    in ``year`` that hold at least these départements whole (all of France for the newest
    bundled year).
    """
    missing = [c for c in ("scope_type", "scope", "metric", "value") if c not in claims.columns]
    if missing:
        raise InputError(f"`claims` lacks the column(s) {missing}")
    file_date = parse_date(as_of, what="`as_of`") if as_of is not None else None  # type: ignore[arg-type]
    newest = population_years()[0]
    todo = []
    for claim in claims.to_dict("records"):
        level, code = str(claim["scope_type"]), str(claim["scope"])
        if level == "departement":
            code = normalize_departements(code)[0]  # type: ignore[index]
            name = departement_name(code)
        elif level == "region":
            code = normalize_regions(code)[0]  # type: ignore[index]
            name = region_name(code)
        elif level == "nation":
            code, name = "FR", "France"
        else:
            raise InputError(f"`claims` has the scope_type {level!r}; expected departement, "
                             "region or nation")
        metric = str(claim["metric"])
        compared = code in full[level] and metric in COMPARABLE_METRICS
        # a compared claim is computed with the populations in force at its date; the floor
        # given for the others comes from one national computation at the newest populations
        year = _year_at(claim.get("date")) if compared else newest
        todo.append((claim, level, code, name, metric, compared, year))
    needed: dict[int, set[str]] = {}
    for _claim, level, code, _name, _metric, _compared, year in todo:
        deps = needed.setdefault(year, set())
        if level == "departement":
            deps.add(code)
        elif level == "region":
            deps |= set(departements_of_region(code))
        else:
            deps |= set(all_departements())
    figures: dict[tuple[int, str, str], dict[str, float]] = {}
    rows = []
    for claim, level, code, name, metric, compared, year in todo:
        if (year, level, code) not in figures:
            figures[(year, level, code)] = _figures(prepared_at(year, needed[year]), level,
                                                    code)
        f = figures[(year, level, code)]
        claimed = float(claim["value"])
        if compared and metric == "n_cpts_signed" and f["n_with_status"] < f["n_cpts"]:
            compared = False  # CPTS without status in the file: signatures cannot be counted
        computed = f[metric] if compared else None
        if compared:
            explanation = _explain(claim, f, float(computed), year)  # type: ignore[arg-type]
            when = _claim_date(claim.get("date"))
            if file_date is not None and when is not None and when < file_date:
                explanation.insert(0, f"publication du {when:%d/%m/%Y}, fichier du "
                                      f"{file_date:%d/%m/%Y} : les CPTS créées ou modifiées "
                                      "entre-temps diffèrent")
        else:
            reason = ("indicateur non calculable à partir d'un fichier de territoires"
                      if metric not in COMPARABLE_METRICS else
                      f"le fichier ne donne le statut que de {int(f['n_with_status'])} des "
                      f"{int(f['n_cpts'])} CPTS : les signataires ne peuvent être comptées"
                      if code in full[level] else
                      "le fichier ne liste pas toutes les CPTS de ce territoire")
            explanation = [reason]
            if f["n_cpts"] and code not in full[level]:
                # a floor for today's coverage, whatever the claim's date: the file's CPTS
                # are counted as they stand, not as they stood when the claim was published
                explanation.append(
                    f"les {int(f['n_cpts'])} CPTS du fichier y couvrent aujourd'hui "
                    f"{_fr_pct(f['coverage_rate'])} de la population (populations légales "
                    f"{year}) : un plancher pour la couverture actuelle, pas un chiffre à la "
                    "date de la publication")
        rows.append({
            "scope_type": level, "scope": code, "scope_name": name, "metric": metric,
            "claimed": claimed, "qualifier": claim.get("qualifier"),
            "claim_date": claim.get("date"), "statuses_counted": claim.get("statuses_counted"),
            "compared": compared, "computed": computed,
            "difference": None if computed is None else computed - claimed,
            "population_year": year, "explanation": "; ".join(explanation),
            "source_title": claim.get("source_title"), "source_url": claim.get("source_url"),
            "quote": claim.get("quote"),
        })
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("claimed", "computed", "difference"):
        out[col] = pd.to_numeric(out[col], errors="coerce")
    out["population_year"] = out["population_year"].astype("int64")
    out.attrs = {"complete": "; ".join(f"{lvl}: {', '.join(sorted(c))}"
                                       for lvl, c in full.items() if c)}
    return out
