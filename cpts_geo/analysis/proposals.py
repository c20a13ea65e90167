"""Candidate CPTS for the communes no CPTS covers yet: propositions planners can discuss.

:func:`propose_territories` partitions the uncovered communes of one or more départements into
contiguous candidate territories (the method: :mod:`cpts_geo.analysis.partition`), within
population bounds wherever the geography allows, following EPCI boundaries, and aiming at a
total number of CPTS. Existing CPTS are left as they are. The candidates come back as a
territory table with status ``"proposition"`` that round-trips through
:func:`cpts_geo.read_territories` into coverage, maps and the site, with the figures of each
candidate and the reason for every departure from the rules.

Rules a planner has to defend:

* two communes are neighbours when they share a border of positive length (a corner contact is
  no border), at the granularity of the inputs (Paris, Lyon and Marseille by arrondissement
  when the communes or the territories are);
* the communes the bundled boundaries do not draw (:data:`~cpts_geo.sources.bundle.DRAWN_INSIDE`:
  four Cantal communes inside Neussargues-Moissac) go with the commune whose outline covers them;
* the existing CPTS of the area are those of ``territories`` with at least one commune in it: a
  CPTS straddling two départements counts in each (the count in the summary says how many
  straddle);
* taille 1 (< 40,000 inhabitants) is meant for mountain areas; the bundle does not hold the
  *zone de montagne* classification, so the planner names them (``mountain``): candidates made of
  those communes may go down to ``mountain_min_population``. Mountain and other communes are not
  mixed in one candidate, unless a zone too small to stand alone has to be attached;
* a zone of uncovered communes too small to reach its floor (an enclave, an island, a valley cut
  off by covered communes) is attached to the neighbouring candidate it shares the longest
  border with when it has one, or kept alone; its reason says which and why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from .._text import around
from ..errors import InputError, plural, public, warn
from ..geography import (
    arrondissements,
    departement_name,
    departement_of,
    normalize_departement,
    normalize_departements,
)
from ..membership import as_membership, finish
from ..sources.bundle import DRAWN_INSIDE, epci_names
from ..typing import Codes, Respect
from .aci import size_class
from .inputs import Prepared, prepare
from .partition import Partition, partition

__all__ = [
    "CANDIDATE_COLUMNS",
    "MOUNTAIN_MIN_POPULATION",
    "Proposals",
    "is_proposal",
    "propose",
    "propose_territories",
    "without_proposals",
]

#: Floor of a candidate made of mountain communes, by default (taille 1). A choice of cpts_geo:
#: the ACI sets no lower bound for taille 1.
MOUNTAIN_MIN_POPULATION = 10_000

#: Columns of :attr:`Proposals.candidates`.
CANDIDATE_COLUMNS = (
    "cpts", "cpts_id", "population", "n_communes", "main_insee", "main_nom", "departements",
    "area_km2", "size_class", "polsby_popper", "n_epci", "epci_split", "epci_split_names",
    "floor", "status", "reason", "insee", "noms",
)

_STATUS = "proposition"


@dataclass(frozen=True)
class Proposals:
    """Candidate CPTS (:func:`propose_territories`).

    Attributes
    ----------
    territories : pandas.DataFrame
        The membership table of the candidates (the columns of
        :func:`cpts_geo.read_territories`), one row per commune, status ``"proposition"``: pass
        it, alone or concatenated with the existing territories, to any function that takes
        territories, or write it with :meth:`territory_file`.
    candidates : pandas.DataFrame
        One row per candidate, most populous first (:data:`CANDIDATE_COLUMNS`): ``cpts``
        (its name), ``cpts_id``, ``population``, ``n_communes``, ``main_insee`` and
        ``main_nom`` (its most populous commune), ``departements``, ``area_km2``,
        ``size_class`` (ACI taille), ``polsby_popper`` (compactness: 4π·area/perimeter², 1 for
        a disc), ``n_epci``, ``epci_split`` (how many of its EPCI it shares with another
        candidate) and ``epci_split_names``, ``floor`` (the lowest population allowed:
        ``min_population``, or ``mountain_min_population`` in a mountain area), ``status``
        (``"ok"`` within the bounds, ``"below_floor"``, ``"above_max"``), ``reason`` (why, and
        what was attached to it), ``insee`` and ``noms`` (its communes, comma-separated).
    summary : dict
        JSON-ready: ``departements``, ``n_uncovered_communes``, ``uncovered_population``,
        ``n_existing`` (CPTS of ``territories`` with a commune in the area),
        ``n_existing_straddling`` (those with communes elsewhere too), ``target``,
        ``n_proposed``, ``n_total`` (existing + proposed), ``possible_min`` and
        ``possible_max`` (candidates the bounds allow), ``n_below_floor``, ``n_above_max``,
        ``n_attached`` (zones too small attached to a candidate), ``epci_split`` (EPCI split
        between candidates), ``n_partly_covered`` (communes whose CPTS shares add up to less
        than 1, left as they are), ``parameters`` and ``reason`` (how close the count came to
        the target, and why).
    populations : pandas.Series
        The population of each commune proposed (indexed by INSEE code), of the vintage of the
        communes given.
    """

    territories: pd.DataFrame
    candidates: pd.DataFrame
    summary: dict[str, Any]
    populations: pd.Series

    @property
    def reason(self) -> str:
        """How close the count came to the target, and why."""
        return str(self.summary["reason"])

    def territory_file(self) -> pd.DataFrame:
        """The candidates as a territory file a planner opens and :func:`read_territories` reads.

        Returns
        -------
        pandas.DataFrame
            One row per commune: ``cpts``, ``cpts_id``, ``insee``, ``nom_commune``,
            ``departement``, ``population_commune``, ``status``, ``source`` and ``note`` (the
            candidate's population, size class and reason); ``read_territories`` ignores
            ``population_commune`` and ``note``.
        """
        t = self.territories
        note = {r["cpts_id"]: f"{r['population']:,}".replace(",", " ") + " inhabitants, "
                f"taille {r['size_class']}; {r['reason']}"
                for r in self.candidates.to_dict("records")}
        pop = self.populations
        return pd.DataFrame({
            "cpts": t["cpts"], "cpts_id": t["cpts_id"], "insee": t["insee"],
            "nom_commune": t["nom"],
            "departement": t["insee"].map(departement_of),
            "population_commune": t["insee"].map(pop).astype("Int64"),
            "status": t["status"].astype(str), "source": t["source"],
            "note": t["cpts_id"].map(note),
        })


def is_proposal(status: pd.Series) -> np.ndarray:
    """Whether each row's status is ``"proposition"`` (a candidate, not a CPTS)."""
    return (status.astype(object) == _STATUS).to_numpy(dtype=bool)


def without_proposals(p: Prepared) -> Prepared:
    """The inputs without the CPTS of status ``"proposition"``: a proposition is no CPTS.

    Maps and the site give the coverage rate and the gap zones of the real CPTS, and draw the
    propositions over them; :func:`cpts_geo.coverage` counts every row it is given (the round
    trip of the proposals gives 100 %), unless filtered with ``statuses``.
    """
    m = p.membership
    prop = is_proposal(m["status"])
    if not prop.any():
        return p
    kept = m[~prop].reset_index(drop=True)
    kept.attrs = dict(m.attrs)
    return replace(p, membership=kept, _cache={})


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
def _check_int(value: object, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InputError(f"`{name}` was {value!r}; expected a whole number >= {low}")
    return int(value)


def _check_bounds(min_population: object, max_population: object,
                  mountain_min_population: object) -> tuple[int, int, int]:
    lo = _check_int(min_population, "min_population", 1)
    hi = _check_int(max_population, "max_population", 1)
    if lo >= hi:
        raise InputError(f"`min_population` ({lo:,}) must be below `max_population` ({hi:,})")
    mlo = _check_int(mountain_min_population, "mountain_min_population", 1)
    if mlo > lo:
        raise InputError(f"`mountain_min_population` ({mlo:,}) must not exceed "
                         f"`min_population` ({lo:,}): it lowers the floor in mountain areas")
    return lo, hi, mlo


def _mountain_mask(p: Prepared, mountain: Codes | None) -> np.ndarray:
    """Communes of ``p`` in the mountain area: départements (codes or names) or communes."""
    mask = np.zeros(len(p.codes), dtype=bool)
    if mountain is None:
        return mask
    items: list[object] = ([mountain] if isinstance(mountain, str | int)
                           else list(mountain))
    if not items:
        raise InputError("`mountain` is empty: give départements or INSEE codes, or None")
    deps = p.communes["departement"].astype(str).to_numpy(dtype=object)
    position = p.position
    city = {a: c for c, arms in arrondissements().items() for a in arms}
    for item in items:
        text = str(item).strip()
        if re.fullmatch(r"\d[\dAB]\d{3}", text.upper()):  # an INSEE commune code
            code = text.upper()
            if code in position.index:
                mask[position[code]] = True
            elif code in arrondissements():  # a city whole: its arrondissements
                arms = [a for a in arrondissements()[code] if a in position.index]
                mask[position[arms].to_numpy()] = True
            elif code in city and city[code] in position.index:
                mask[position[city[code]]] = True
            else:
                raise InputError(f"`mountain` lists {item!r}, a commune that is not in the "
                                 "département(s) proposed for")
        else:
            mask |= deps == normalize_departement(item)
    return mask


# ---------------------------------------------------------------------------------------------
# The pure function
# ---------------------------------------------------------------------------------------------
@dataclass
class _Gaps:
    """The uncovered communes of the area, as the graph the partition splits."""

    idx: np.ndarray  # positions (in p.communes) of the uncovered communes of the area
    work: np.ndarray  # the positions partitioned: idx less the communes folded into another
    folded: dict[int, list[int]]  # position -> communes not drawn that lie inside it
    lone: dict[int, str]  # communes not drawn whose covering commune is covered -> that commune
    pop: np.ndarray  # population of each node of `work` (with what is folded into it)
    adj: Any  # scipy CSR matrix of border lengths between the nodes of `work`
    epci: np.ndarray  # EPCI code of every commune of p (a commune in none: "~" + its code)


def _gaps(p: Prepared, idx: np.ndarray, covered: np.ndarray) -> _Gaps:
    from scipy import sparse

    codes, graph = p.codes, p.graph
    folded: dict[int, list[int]] = {}
    lone: dict[int, str] = {}
    first_inside: dict[str, int] = {}  # covered host -> the first commune inside it
    keep = np.ones(len(idx), dtype=bool)
    uncovered = set(idx.tolist())
    for i, pos in enumerate(idx.tolist()):
        host = DRAWN_INSIDE.get(str(codes[pos]))
        if host is None or graph.neighbours(str(codes[pos])) or host not in p.position.index:
            continue
        h = int(p.position[host])
        if covered[h]:  # inside a covered commune: together, one candidate, kept alone
            if host not in first_inside:
                first_inside[host] = pos
                lone[pos] = host
                continue
            h = first_inside[host]
        elif h not in uncovered:
            continue
        folded.setdefault(h, []).append(pos)
        keep[i] = False
    work = idx[keep]
    pop = p.population[work].copy()
    for h, extra in folded.items():
        pop[np.searchsorted(work, h)] += p.population[extra].sum()
    node = graph.nodes(codes[work])
    a, b, length = graph.border_arrays(node)
    local = np.full(len(graph), -1, dtype=np.int64)
    local[node[node >= 0]] = np.flatnonzero(node >= 0)
    la, lb = local[a], local[b]
    ok = lb >= 0
    adj = sparse.csr_matrix((length[ok], (la[ok], lb[ok])), shape=(len(work), len(work)))
    raw = (p.communes["epci"].astype(object).to_numpy() if "epci" in p.communes.columns
           else np.full(len(codes), None, dtype=object))
    epci = np.array([str(e) if isinstance(e, str) and e else "~" + str(c)
                     for e, c in zip(raw, codes, strict=True)], dtype=object)
    return _Gaps(idx, work, folded, lone, pop, adj, epci)


def _perimeters(p: Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outline length of each commune (km), and its borders as position arrays.

    The outline is the outer border plus every shared border; the borders come as (position,
    neighbour position or -1 outside ``communes``, length).
    """
    graph = p.graph
    node = graph.nodes(p.codes)
    perimeter = graph.exterior(node)
    fa, fb, length = graph.border_arrays(node)
    pos_of = np.full(len(graph), -1, dtype=np.int64)
    pos_of[node[node >= 0]] = np.flatnonzero(node >= 0)
    np.add.at(perimeter, pos_of[fa], length)
    return perimeter, pos_of[fa], pos_of[fb], length


def _existing(m: pd.DataFrame, departements: list[str]) -> tuple[set[str], set[str], int]:
    """The existing CPTS of the area, those of them straddling, the first free number.

    Existing: the ids with a commune in the area; straddling: those with communes elsewhere
    too; the number follows the propositions already numbered there.
    """
    in_area = m["insee"].map(departement_of).isin(departements).to_numpy()
    existing = set(m.loc[in_area, "cpts_id"].astype(str))
    straddling = set(m.loc[~in_area & m["cpts_id"].isin(existing).to_numpy(), "cpts_id"])
    start = 1
    for cid in existing:
        found = re.fullmatch(r"proposition-[0-9a-z]+-(\d+)", cid)
        if found:
            start = max(start, int(found[1]) + 1)
    return existing, straddling, start


def _names(p: Prepared) -> np.ndarray:
    c = p.communes
    return (c["nom"].astype(str).to_numpy(dtype=object) if "nom" in c.columns
            else p.codes.astype(object))


def _fmt(n: float) -> str:
    return f"{round(n):,}"


def _listed(names: Iterable[object], n: int = 5) -> str:
    items = [str(x) for x in names]
    return ", ".join(items[:n]) + (f" … and {len(items) - n} more" if len(items) > n else "")


def _cpts(name: str) -> str:
    """``"CPTS Marseille-7"`` as it is, ``"Trièves"`` as ``"CPTS Trièves"``."""
    return name if name.upper().startswith("CPTS") else f"CPTS {name}"


def _surroundings(p: Prepared, positions: np.ndarray) -> str:
    """What borders a group of communes: the CPTS around it, an enclave, an outer border."""
    graph = p.graph
    node = graph.nodes(p.codes[positions])
    _, b, _ = graph.border_arrays(node)
    inside = set(node[node >= 0].tolist())
    outer = sorted({int(x) for x in b} - inside)
    m = p.membership
    mnode = graph.nodes(m["insee"])
    names = m["cpts"].to_numpy(dtype=object)
    sets = [set(names[mnode == o]) for o in outer]
    around = sorted(set().union(*sets)) if sets else []
    common = set.intersection(*sets) if sets else set()
    exterior = float(graph.exterior(node).sum())
    if sets and common and exterior < 1e-3:
        return "an enclave in " + _cpts(sorted(common)[0])
    where = ("bordered by " + ", ".join(_cpts(a) for a in around) if around
             else "no neighbour in the département(s)")
    if exterior > 0:
        where += ", with an outer border: sea, foreign country or a hole of the data"
    return where


def _candidate_reason(p: Prepared, g: _Gaps, res: Partition, k: int, members: np.ndarray,
                      mountain: np.ndarray, min_population: int, max_population: int,
                      split: list[tuple[str, str]]) -> tuple[str, str]:
    """The status of candidate ``k`` and why (what was attached to it, the EPCI it splits)."""
    codes, names, pop = p.codes, _names(p), p.population
    total, lo, kind = float(pop[members].sum()), float(res.floor[k]), res.kind[k]
    status = ("above_max" if total > max_population else "below_floor" if total < lo
              else "ok")
    reason: list[str] = []
    if kind == "above_max":
        city = str(codes[members[0]]) in arrondissements()
        reason.append(f"above the ceiling: one commune of {_fmt(total)} inhabitants (a commune "
                      "is not split" + ("; load the communes with arrondissements=True to "
                                        "split the city" if city else "") + ")")
    elif kind == "alone":
        zone = res.zones[int(res.zone_of[k])]
        lone = [int(x) for x in members if int(x) in g.lone]
        if lone:
            host = g.lone[lone[0]]
            around = sorted(set(p.membership.loc[p.membership["insee"] == host, "cpts"]))
            where = ("not drawn by the bundled boundaries, "
                     + ("it lies" if len(members) == 1 else "they lie")
                     + f" inside {names[p.position[host]]} ({host}), which "
                     + ", ".join(_cpts(a) for a in around) + " covers")
        else:
            where = _surroundings(p, members)
        reason.append(
            f"below the floor: a zone of {plural(len(members), 'commune')} ({_fmt(total)} "
            f"inhabitants) cut off from the other uncovered communes ({where}); kept alone: "
            + (zone.note or "no neighbouring candidate to attach it to")
            + "; to discuss: join a neighbouring CPTS")
    elif kind == "no_floor":
        reason.append("below the floor: no split of its zone meets both bounds")
    elif status == "ok":
        reason.append("within the bounds" + (
            f" (mountain area: taille 1 allowed down to {_fmt(lo)})"
            if total < min_population else ""))
    else:  # a part grown past a bound by the zones attached to it
        reason.append(("below the floor" if status == "below_floor" else "above the ceiling")
                      + " once the zones too small were attached")
    for nodes in res.attached[k]:
        pos = g.work[nodes]
        pos = np.sort(np.concatenate([pos, [e for h in pos for e in g.folded.get(int(h), [])]])
                      ).astype(int)
        by = ("a commune above the ceiling" if kind == "above_max"
              else "the edge of the mountain area" if mountain[pos].any() != mountain[
                  members].all() else "a commune above the ceiling or the mountain edge")
        reason.append(f"with {plural(len(pos), 'commune')} attached ({_listed(names[pos])}; "
                      f"{_fmt(pop[pos].sum())} inhabitants): a zone too small on its own, cut "
                      f"off from the others by {by}")
    inner = sorted(e for h in members for e in g.folded.get(int(h), []))
    if inner and not any(int(x) in g.lone for x in members):
        hosts = sorted({DRAWN_INSIDE[str(codes[e])] for e in inner})
        reason.append("includes " + ", ".join(f"{names[e]} ({codes[e]})" for e in inner)
                      + ", which the bundled boundaries do not draw: they lie inside "
                      + ", ".join(f"{names[p.position[h]]} ({h})" for h in hosts))
    reason += [f"splits EPCI {label} ({why})" for label, why in split]
    return status, "; ".join(reason)


def _count_reason(area: str, n_existing: int, n_straddling: int, n_prop: int,
                  target: int | None, target_n: int | None, res: Partition,
                  uncovered: float, floors: str, mountain_used: bool,
                  bounds: tuple[int, int]) -> str:
    """How many CPTS in all, how close to the target, and why."""
    s = res.summary
    count = (f"{n_existing + n_prop} CPTS in all in {area}: {n_existing} existing (with a "
             "commune there" + (f", {n_straddling} of them straddling another département"
                                if n_straddling else "") + f") + {n_prop} proposed")
    why: list[str] = []
    if not len(res.labels):
        why.append(f"every commune of {area} is covered: nothing to propose")
    elif target is None or target_n is None:
        why.append(f"no target: candidates of about {_fmt(math.sqrt(bounds[0] * bounds[1]))} "
                   "inhabitants (the geometric mean of the bounds)")
    elif target_n < s["possible_min"]:
        why.append(f"target {target} not reached: with {n_existing} existing CPTS it leaves "
                   f"{target_n} to propose, but the {_fmt(uncovered)} uncovered inhabitants "
                   f"need at least {s['possible_min']} candidates (the ceiling of "
                   f"{_fmt(bounds[1])}, and the zones that stand alone)")
    elif target_n > s["possible_max"]:
        why.append(f"target {target} not reached: {floors} "
                   f"allow{'s' if floors.startswith('the floor ') else ''} at most "
                   f"{s['possible_max']} candidates in the {_fmt(uncovered)} uncovered "
                   f"inhabitants, so at most {n_existing + s['possible_max']} CPTS in all"
                   + ("" if mountain_used else
                      "; in a mountain area, allow taille 1 with `mountain`"))
    elif n_prop == target_n:
        why.append(f"target {target} reached")
    else:
        why.append(f"target {target} not reached")
    why += [f"zone of {_fmt(z.population)} inhabitants: {z.note}" for z in res.zones
            if z.note and not z.small]
    if s["n_alone"]:
        why.append(f"{plural(s['n_alone'], 'zone')} too small to reach the floor kept alone")
    if s["n_attached"]:
        why.append(f"{plural(s['n_attached'], 'zone')} too small to reach the floor attached "
                   "to a neighbouring candidate")
    return count + "; " + "; ".join(why)


def propose(
    p: Prepared,
    departements: list[str],
    *,
    target: int | None = None,
    min_population: int = 40_000,
    max_population: int = 175_000,
    respect: Respect = "epci",
    seed: int = 0,
    mountain: np.ndarray | None = None,
    mountain_min_population: int = MOUNTAIN_MIN_POPULATION,
    epci_names: Mapping[str, str] | None = None,
) -> Proposals:
    """Candidate CPTS of prepared inputs (see :func:`propose_territories`).

    Parameters
    ----------
    p : Prepared
        The inputs, every commune of ``departements`` in ``p.communes``.
    departements : list of str
        Normalised codes of the area.
    target, min_population, max_population, respect, seed, mountain_min_population
        As in :func:`propose_territories`.
    mountain : numpy.ndarray of bool, optional
        The communes of ``p.communes`` in the mountain area.
    epci_names : mapping, optional
        EPCI code -> name, for the reasons.

    Returns
    -------
    Proposals
    """
    codes, names, pop = p.codes, _names(p), p.population
    per = p.per_commune
    scope = p.scoped(departements)
    covered = per["covered"].to_numpy()
    partly = scope & covered & (per["claimed_share"].to_numpy() < 1 - 1e-9)
    mountain = np.zeros(len(codes), bool) if mountain is None else mountain
    existing, straddling, start = _existing(p.membership, departements)
    g = _gaps(p, np.flatnonzero(scope & ~covered), covered)

    # the partition
    e_id = np.unique(g.epci[g.work].astype(str), return_inverse=True)[1].ravel()
    floor = np.where(mountain[g.work], float(mountain_min_population), float(min_population))
    target_n = None if target is None else max(0, target - len(existing))
    res = partition(g.pop, e_id, g.adj, floor=floor, max_pop=float(max_population),
                    target_n=target_n, respect=respect == "epci", seed=seed)
    label = np.full(len(codes), -1, dtype=np.int64)
    label[g.work] = res.labels
    zone = np.full(len(codes), -1, dtype=np.int64)
    for zi, z in enumerate(res.zones):
        zone[g.work[z.nodes]] = zi
    for h, extra in g.folded.items():
        label[extra] = label[h]
        zone[extra] = zone[h]
    alone_big = (label >= 0) & (zone < 0)  # communes above the ceiling: a zone each
    zone[alone_big] = len(res.zones) + np.arange(int(alone_big.sum()))
    k = len(res.kind)

    # EPCI split between candidates, and why
    names_of_epci = dict(epci_names or {})
    proposed = np.flatnonzero(label >= 0)
    by_epci = pd.DataFrame({"epci": g.epci[proposed], "label": label[proposed],
                            "zone": zone[proposed], "pop": pop[proposed]})
    by_epci = by_epci[~by_epci["epci"].str.startswith("~")]
    stats = by_epci.groupby("epci").agg(n_labels=("label", "nunique"),
                                        n_zones=("zone", "nunique"),
                                        population=("pop", "sum"))
    split_why = {
        e: ("above the ceiling, it must be split" if r["population"] > max_population
            else "its uncovered communes lie in separate zones" if r["n_zones"] > 1
            else "to reach the count within the bounds")
        for e, r in stats[stats["n_labels"] > 1].iterrows()
    }

    def epci_label(e: str) -> str:
        return f"{names_of_epci[e]} ({e})" if e in names_of_epci else e

    # figures of each candidate
    area = (pd.to_numeric(p.communes["area_km2"], errors="coerce").to_numpy()
            if "area_km2" in p.communes.columns else np.full(len(codes), np.nan))
    perimeter, fa, fb, flen = _perimeters(p)
    lab_a = label[fa]
    lab_b = np.where(fb >= 0, label[np.maximum(fb, 0)], -2)  # -2: outside `communes`
    same = (lab_a == lab_b) & (lab_a >= 0)
    internal2 = np.bincount(lab_a[same], weights=flen[same], minlength=k)  # both directions
    rows, member_rows = [], []
    for c in range(k):
        members = np.flatnonzero(label == c)
        total = float(pop[members].sum())
        main = members[np.lexsort((codes[members].astype(str), -pop[members]))[0]]
        number = start + c
        name = f"Proposition {number} — {around(str(names[main]))}"
        cid = f"proposition-{departement_of(str(codes[main])).lower()}-{number:02d}"
        a_km2 = None if np.isnan(area[members]).all() else float(np.nansum(area[members]))
        outline = float(perimeter[members].sum() - internal2[c])
        epcis = sorted({str(e) for e in g.epci[members] if not str(e).startswith("~")})
        split = [(epci_label(e), split_why[e]) for e in epcis if e in split_why]
        status, reason = _candidate_reason(p, g, res, c, members, mountain, min_population,
                                           max_population, split)
        rows.append({
            "cpts": name, "cpts_id": cid, "population": round(total),
            "n_communes": len(members), "main_insee": str(codes[main]),
            "main_nom": str(names[main]),
            "departements": ",".join(sorted({departement_of(str(x)) for x in codes[members]})),
            "area_km2": None if a_km2 is None else round(a_km2, 2),
            "size_class": size_class(total),
            "polsby_popper": (round(4 * math.pi * a_km2 / outline ** 2, 3)
                              if a_km2 and outline > 0 else None),
            "n_epci": len(epcis), "epci_split": len(split),
            "epci_split_names": "; ".join(lbl for lbl, _ in split),
            "floor": round(float(res.floor[c])), "status": status, "reason": reason,
            "insee": ", ".join(str(x) for x in codes[members]),
            "noms": ", ".join(str(x) for x in names[members]),
        })
        member_rows += [(name, cid, str(codes[i]), str(names[i])) for i in members]
    candidates = pd.DataFrame(rows, columns=list(CANDIDATE_COLUMNS))
    for col in ("population", "n_communes", "size_class", "n_epci", "epci_split", "floor"):
        candidates[col] = candidates[col].astype("int64")
    for col in ("area_km2", "polsby_popper"):
        candidates[col] = candidates[col].astype(float)
    candidates.attrs = dict(p.attrs)

    # the territory table
    params: dict[str, Any] = {
        "departements": ",".join(departements), "target": target,
        "min_population": min_population, "max_population": max_population,
        "respect": respect, "seed": seed,
        "mountain_communes": int(mountain[scope].sum()),
        "mountain_min_population": mountain_min_population,
    }
    shown = {key: v for key, v in params.items()
             if not (key.startswith("mountain") and not params["mountain_communes"])}
    vintage = ", ".join(f"{key} {p.attrs[key]}" for key in ("cog_year", "population_year")
                        if p.attrs.get(key))
    source = ("proposition drawn by cpts_geo propose_territories("
              + ", ".join(f"{key}={v}" for key, v in shown.items())
              + (f"; {vintage}" if vintage else "")
              + "): a candidate territory for discussion, not a CPTS project")
    table = pd.DataFrame(member_rows, columns=["cpts", "cpts_id", "insee", "nom"])
    table["status"] = _STATUS
    table["source"] = source
    territories = finish(as_membership(table, name="proposals"), source="propose_territories",
                         form="long")

    # the count, and why
    area_name = ", ".join(f"{departement_name(d)} ({d})" for d in departements)
    uncovered = float(pop[g.idx].sum())
    mountain_used = bool(mountain[g.idx].any())
    floors = (f"the floor ({_fmt(min_population)})" if not mountain_used
              else f"the floor ({_fmt(mountain_min_population)} in the mountain area)"
              if mountain[g.idx].all()
              else f"the floors ({_fmt(min_population)}, and {_fmt(mountain_min_population)} in "
              "the mountain area)")
    reason = _count_reason(area_name, len(existing), len(straddling), k, target, target_n, res,
                           uncovered, floors, mountain_used, (min_population, max_population))
    if partly.any():
        n_partly = plural(int(partly.sum()), "commune")
        reason += f"; {n_partly} partly covered (CPTS shares adding up to less than 1) left as " \
                  "they are"
        warn(f"{n_partly} of {area_name} are only partly covered (their CPTS shares add up to "
             "less than 1): they are left to their CPTS, so the proposals do not bring the "
             "coverage to 100 %: " + _listed(codes[partly], 20))
    above_city = [c for c, st in zip(candidates["main_insee"], candidates["status"],
                                     strict=True) if st == "above_max" and c in arrondissements()]
    if above_city:
        warn(f"{', '.join(above_city)} is whole in `communes` and above the ceiling: load the "
             "communes with arrondissements=True to split it between candidates")
    summary: dict[str, Any] = {
        "departements": list(departements),
        "n_uncovered_communes": len(g.idx),
        "uncovered_population": round(uncovered),
        "n_existing": len(existing),
        "n_existing_straddling": len(straddling),
        "target": target,
        "n_proposed": k,
        "n_total": len(existing) + k,
        "possible_min": int(res.summary["possible_min"]),
        "possible_max": int(res.summary["possible_max"]),
        "n_below_floor": int((candidates["status"] == "below_floor").sum()),
        "n_above_max": int((candidates["status"] == "above_max").sum()),
        "n_attached": int(res.summary["n_attached"]),
        "epci_split": len(split_why),
        "n_partly_covered": int(partly.sum()),
        "parameters": params,
        "reason": reason,
    }
    populations = pd.Series(pop[g.idx].round().astype("int64"),
                            index=pd.Index(codes[g.idx].astype(str), name="insee"),
                            name="population")
    return Proposals(territories, candidates, summary, populations)


# ---------------------------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------------------------
@public
def propose_territories(
    communes: pd.DataFrame,
    territories: pd.DataFrame | None,
    *,
    departements: Codes,
    target: int | None = None,
    min_population: int = 40_000,
    max_population: int = 175_000,
    respect: Respect = "epci",
    seed: int = 0,
    mountain: Codes | None = None,
    mountain_min_population: int = MOUNTAIN_MIN_POPULATION,
) -> Proposals:
    """Propose candidate CPTS for the communes no CPTS covers yet.

    The uncovered communes of ``departements`` are split into contiguous candidates (sharing
    borders of positive length), each within ``[min_population, max_population]`` wherever the
    geography allows; every uncovered commune ends in exactly one candidate and the existing
    CPTS are left as they are. The method (a recursive spanning-tree bisection, deterministic
    for a seed) is described in :mod:`cpts_geo.analysis.partition`; the rules a planner has to
    defend in :mod:`cpts_geo.analysis.proposals`.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame or pandas.DataFrame
        Communes (:func:`cpts_geo.load_communes`); the départements asked for are completed
        from the same source and vintage when some of their communes are missing (with a
        warning). Paris, Lyon and Marseille are split between candidates only when they are by
        arrondissement (``load_communes(..., arrondissements=True)``, or territories listing
        arrondissements).
    territories : pandas.DataFrame or None
        The existing CPTS (:func:`cpts_geo.read_territories`); None: none, every commune is
        uncovered.
    departements : str or iterable of str
        The area (codes or names).
    target : int, optional
        The total number of CPTS wanted in the area, existing and proposed. The existing CPTS
        are those with at least one commune in the area (a CPTS straddling départements counts
        in each). None: candidates of about sqrt(min_population * max_population) inhabitants
        (83,666 with the default bounds).
    min_population, max_population : int
        Bounds on a candidate's population (ACI tailles 2 and 3 by default).
    respect : {"epci", None}
        "epci": follow intercommunality boundaries wherever the bounds allow (an EPCI is split
        only to stay within the bounds or to reach the count; ``epci_split`` counts them).
    seed : int
        Seed of the random spanning trees: the same inputs and seed give the same candidates.
    mountain : str or iterable of str, optional
        The mountain area where taille 1 (< 40,000 inhabitants) is allowed: départements (codes
        or names, all their communes) or INSEE codes of communes (e.g. the communes classées en
        *zone de montagne*, which the bundle does not hold). Candidates made of these communes
        have the floor ``mountain_min_population``; mountain and other communes are not mixed
        in one candidate except to attach a zone too small to stand alone.
    mountain_min_population : int
        Floor of a candidate in the mountain area (default 10,000, a choice of cpts_geo: the
        ACI sets no lower bound for taille 1).

    Returns
    -------
    Proposals
        ``territories`` (the membership table of the candidates, status ``"proposition"``),
        ``candidates`` (the figures and reason of each) and ``summary`` (the count and why).
        Candidates are named after their most populous commune and numbered from the most
        populous: ``"Proposition 3 — autour de Voiron"``, id ``"proposition-38-03"`` (numbers
        continue after the propositions already in ``territories``).

    Raises
    ------
    InputError
        If a parameter is malformed, ``communes`` lacks a column (``epci`` with
        ``respect="epci"``) or a département cannot be completed.

    Warns
    -----
    CptsGeoWarning
        When communes are only partly covered (left as they are), when a city whole is above the
        ceiling, or when communes of the area had to be loaded.

    See Also
    --------
    cpts_geo.find_gaps : the gap zones the candidates cover.

    Examples
    --------
    >>> import cpts_geo
    >>> isere = cpts_geo.load_communes("38")
    >>> existing = pd.DataFrame({"cpts": "Sud-Est Grenoblois", "status": "ACI signé",
    ...                          "insee": ["38421", "38158", "38309", "38179", "38533"]})
    >>> prop = propose_territories(isere, existing, departements="38", target=20)
    >>> prop.summary["n_existing"], prop.summary["n_proposed"], prop.summary["n_total"]
    (1, 19, 20)
    >>> prop.candidates.loc[0, ["cpts", "cpts_id", "status"]].tolist()
    ['Proposition 1 — autour de Grenoble', 'proposition-38-01', 'ok']
    >>> both = pd.concat([existing, prop.territories])
    >>> cpts_geo.coverage(isere, both)["coverage_rate"].tolist()
    [1.0]
    """
    deps = normalize_departements(departements, what="departements")
    if deps is None:
        raise InputError("`departements` is required: the area to propose candidates for")
    if target is not None:
        target = _check_int(target, "target", 1)
    lo, hi, mlo = _check_bounds(min_population, max_population, mountain_min_population)
    if respect not in ("epci", None):
        raise InputError(f"`respect` was {respect!r} but is expected to be 'epci' or None")
    seed = _check_int(seed, "seed", 0)
    if territories is None:
        territories = pd.DataFrame({"cpts": pd.Series([], dtype=str),
                                    "insee": pd.Series([], dtype=str)})
    needed = ["insee", "population", "departement"] + (["epci"] if respect == "epci" else [])
    if isinstance(communes, pd.DataFrame) and "epci" not in communes.columns and respect:
        raise InputError("`respect` is 'epci' but `communes` has no column 'epci' (load them "
                         "with cpts_geo.load_communes), or pass respect=None")
    p = prepare(communes, territories, whole_departements=deps, needed=needed)
    mask = _mountain_mask(p, mountain)
    return propose(p, deps, target=target, min_population=lo, max_population=hi,
                   respect=respect, seed=seed, mountain=mask, mountain_min_population=mlo,
                   epci_names=epci_names())

