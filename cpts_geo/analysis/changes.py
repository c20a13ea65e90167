"""Compare two states of the CPTS map: a snapshot of each, and what changed between them.

One engine serves three needs: scenario comparison (:func:`compare`, today's map against a
draft), the published site's "changes since the last publication" (a snapshot is stored with
each release and diffed with the next one), and the steps of a coverage timeline.

A snapshot (:func:`snapshot`) is a plain, JSON-ready dict: the vintage, each CPTS (name, status,
date, communes and shares) and the coverage rate of each area. :func:`diff` compares two of them
without any other input, so that a snapshot written months ago can still be compared.

A coverage timeline (:func:`coverage_timeline`) is the series of states of one map at its status
dates: the state at a date holds the CPTS whose status date is on or before it (what ``as_of``
keeps), each step is what :func:`compare` reports between the state at the previous date and
this one (the CPTS created, the coverage of each area touched), counted by the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, public, warn
from ..geography import departement_of
from ..typing import DateLike, Level
from .inputs import Prepared, prepare
from .rates import NATION, _check_level, area_names, area_rates

__all__ = ["TIMELINE_COLUMNS", "Comparison", "compare", "compare_prepared", "coverage_timeline",
           "diff", "snapshot", "timeline_figures"]

#: Columns of :func:`coverage_timeline` after the area's code column.
TIMELINE_COLUMNS = ("nom", "date", "population", "covered_population", "coverage_rate", "delta",
                    "n_cpts", "cpts_entered")

SNAPSHOT_VERSION = 1


def snapshot(p: Prepared, by: Level = "departement",
             rates: pd.DataFrame | None = None) -> dict[str, Any]:
    """The state of prepared inputs, as a JSON-ready dict.

    Parameters
    ----------
    p : Prepared
        The inputs.
    by : {"departement", "region", "nation"}
        Level of the coverage rates recorded.
    rates : pandas.DataFrame, optional
        The coverage table at that level, when already computed.

    Returns
    -------
    dict
        ``version``, ``vintage`` (``cog_year``, ``population_year``, ``census_year``), ``level``,
        ``cpts`` (by id: ``cpts``, ``status``, ``status_date`` ISO, ``communes`` sorted,
        ``shares`` of the communes not wholly in it), ``names`` (commune names),
        ``rates`` (by area: ``nom``, ``coverage_rate``, ``covered_population``,
        ``population``).
    """
    m = p.membership
    cids = m["cpts_id"].astype(str).to_numpy(dtype=object)
    insee = m["insee"].astype(str).to_numpy(dtype=object)
    # rows by CPTS then commune; a CPTS's name is that of its first row
    order = np.lexsort((insee, cids))
    ids, starts = np.unique(cids[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    by_cpts = np.argsort(cids, kind="stable")
    first = by_cpts[np.searchsorted(cids[by_cpts], ids)]
    labels = m["status"].cat.categories
    codes = m["status"].cat.codes.to_numpy().astype(np.int64)[order]
    dates = m["status_date"].to_numpy().astype("datetime64[ns]").view("i8")[order]
    best = np.maximum.reduceat(codes, starts) if len(ids) else codes
    latest = np.maximum.reduceat(dates, starts) if len(ids) else dates
    names_of = m["cpts"].astype(str).to_numpy(dtype=object)[first]
    shares = m["share"].to_numpy(dtype=float)[order]
    communes = insee[order]
    cpts: dict[str, Any] = {}
    for i, cid in enumerate(ids.tolist()):
        a, b = int(starts[i]), int(ends[i])
        part = np.flatnonzero(shares[a:b] != 1) + a
        cpts[cid] = {
            "cpts": names_of[i],
            "status": None if best[i] < 0 else str(labels[best[i]]),
            "status_date": None if latest[i] == np.iinfo(np.int64).min else
            pd.Timestamp(latest[i]).date().isoformat(),
            "communes": communes[a:b].tolist(),
            "shares": {communes[j]: float(shares[j]) for j in part},
        }
    table = area_rates(p, by) if rates is None else rates
    names = dict(zip(p.communes["insee"].astype(str), p.communes["nom"].astype(str),
                     strict=True)) if "nom" in p.communes.columns else {}
    listed = {c for v in cpts.values() for c in v["communes"]}
    return {
        "version": SNAPSHOT_VERSION,
        "vintage": {k: p.attrs.get(k) for k in ("cog_year", "population_year", "census_year")},
        "level": by,
        "cpts": cpts,
        "names": {c: names[c] for c in sorted(listed) if c in names},
        "rates": {
            str(r[by]): {
                "nom": str(r["nom"]),
                "coverage_rate": None if pd.isna(r["coverage_rate"]) else float(
                    r["coverage_rate"]),
                "covered_population": float(r["covered_population"]),
                "population": int(r["population"]),
            }
            for r in table.to_dict("records")
        },
    }


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_text(value: object, optional: bool = True) -> bool:
    return isinstance(value, str) or (optional and value is None)


def check_snapshot(snap: object) -> dict[str, Any]:
    """Refuse what is not a snapshot of this version (a damaged or foreign file).

    Every field that :func:`diff` and the site's change report read is checked for its type, so
    that a foreign file that happens to be JSON is refused here, with :class:`InputError`, and
    not by a ``TypeError`` halfway through a comparison.

    Examples
    --------
    >>> check_snapshot({"version": 1, "rates": {}, "cpts": {}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cpts_geo.errors.InputError: damaged snapshot: 'vintage' must be an object with cog_year, ...
    """
    if not isinstance(snap, Mapping) or type(snap.get("version")) is not int \
            or snap.get("version") != SNAPSHOT_VERSION:
        raise InputError("not a cpts_geo snapshot (missing or unknown 'version')")
    vintage = snap.get("vintage")
    if not isinstance(vintage, Mapping) or any(
            k not in vintage or not (vintage[k] is None or _is_number(vintage[k]))
            for k in ("cog_year", "population_year", "census_year")):
        raise InputError("damaged snapshot: 'vintage' must be an object with cog_year, "
                         "population_year and census_year (integers or null)")
    cpts, rates, names = snap.get("cpts"), snap.get("rates"), snap.get("names", {})
    if not all(isinstance(x, Mapping) for x in (cpts, rates, names)):
        raise InputError("not a cpts_geo snapshot ('cpts', 'rates' and 'names' must be objects)")
    assert isinstance(cpts, Mapping) and isinstance(rates, Mapping) and isinstance(names, Mapping)
    for cid, v in cpts.items():
        if not isinstance(v, Mapping) or not isinstance(v.get("communes"), list) \
                or not all(isinstance(c, str) for c in v["communes"]):
            raise InputError(f"damaged snapshot: CPTS {cid!r} has no list of commune codes")
        if not _is_text(v.get("cpts"), optional=False) or not _is_text(v.get("status")) \
                or not _is_text(v.get("status_date")):
            raise InputError(f"damaged snapshot: CPTS {cid!r} has a name, status or date that "
                             "is not text")
        shares = v.get("shares", {})
        if not isinstance(shares, Mapping) or not all(_is_number(x) for x in shares.values()):
            raise InputError(f"damaged snapshot: CPTS {cid!r} has shares that are not numbers")
    for area, r in rates.items():
        if not isinstance(r, Mapping) or not _is_text(r.get("nom")) or not (
                r.get("coverage_rate") is None or _is_number(r.get("coverage_rate"))):
            raise InputError(f"damaged snapshot: the rate of {area!r} is not a number")
    if not all(isinstance(n, str) for n in names.values()):
        raise InputError("damaged snapshot: commune names that are not text")
    return dict(snap)


def _cpts_of(snap: Mapping[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for cid, v in snap["cpts"].items():
        for c in v["communes"]:
            out.setdefault(c, set()).add(cid)
    return out


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What changed from one snapshot to another, as a JSON-ready dict.

    Parameters
    ----------
    before, after : dict
        Snapshots (:func:`snapshot`).

    Returns
    -------
    dict
        ``vintage_changed`` and ``previous_vintage``; ``cpts``: one record per CPTS present in
        either, with ``change`` in {"created", "dissolved", "changed", "unchanged"} and, for a
        change, the details (``renamed_from``, ``status``/``status_date`` as [before, after],
        ``communes_added``, ``communes_removed``, ``shares`` as {commune: [before, after]});
        ``communes``: the communes that entered or left coverage or changed CPTS (``change`` in
        {"entered", "left", "moved"}, ``before`` and ``after`` as lists of CPTS ids);
        ``areas``: every area whose rate changed, with ``before_rate``, ``after_rate`` and
        ``delta``.

    Examples
    --------
    >>> v = {"cog_year": 2026, "population_year": 2026, "census_year": 2023}
    >>> a = {"version": 1, "vintage": v, "level": "departement", "names": {}, "rates": {},
    ...      "cpts": {"x": {"cpts": "X", "status": None, "status_date": None,
    ...                     "communes": ["42218"], "shares": {}}}}
    >>> d = diff(a, {**a, "cpts": {}})
    >>> [(r["cpts_id"], r["change"]) for r in d["cpts"]], d["communes"][0]["change"]
    ([('x', 'dissolved')], 'left')
    """
    before, after = check_snapshot(before), check_snapshot(after)
    old, new = before["cpts"], after["cpts"]
    records: list[dict[str, Any]] = []
    created = sorted(set(new) - set(old))
    dissolved = sorted(set(old) - set(new))
    # a CPTS whose id changed but whose communes did not is the same CPTS, renamed
    renamed: dict[str, str] = {}
    for k in created:
        same = [o for o in dissolved if o not in renamed.values()
                and old[o]["communes"] == new[k]["communes"]]
        if len(same) == 1:
            renamed[k] = same[0]
    for k in sorted(set(old) | set(new)):
        if k in renamed.values():
            continue
        if k in new and (k in old or k in renamed):
            o, n = old[renamed.get(k, k)], new[k]
            rec = {"cpts_id": k, "cpts": n["cpts"], "change": "unchanged"}
            rec.update(_details(o, n, k, renamed.get(k)))
            if len(rec) > 3:
                rec["change"] = "changed"
        elif k in new:
            rec = {"cpts_id": k, "cpts": new[k]["cpts"], "change": "created",
                   "n_communes": len(new[k]["communes"])}
        else:
            rec = {"cpts_id": k, "cpts": old[k]["cpts"], "change": "dissolved",
                   "n_communes": len(old[k]["communes"])}
        records.append(rec)
    was, now = _cpts_of(before), _cpts_of(after)
    names = {**before.get("names", {}), **after.get("names", {})}
    communes = []
    new_id = {o: k for k, o in renamed.items()}
    for c in sorted(set(was) | set(now)):
        a_ids = now.get(c, set())
        b_ids = was.get(c, set())
        if {new_id.get(i, i) for i in b_ids} == a_ids:
            continue
        change = "entered" if not b_ids else "left" if not a_ids else "moved"
        communes.append({"insee": c, "nom": names.get(c), "change": change,
                         "before": sorted(b_ids), "after": sorted(now.get(c, set()))})
    areas = []
    rb, ra = before["rates"], after["rates"]
    for area in sorted(set(rb) | set(ra)):
        x = (rb.get(area) or {}).get("coverage_rate")
        y = (ra.get(area) or {}).get("coverage_rate")
        if x == y:
            continue
        areas.append({
            "area": area, "nom": (ra.get(area) or rb.get(area) or {}).get("nom"),
            "before_rate": x, "after_rate": y,
            "delta": None if x is None or y is None else y - x,
        })
    return {
        "vintage_changed": before.get("vintage") != after.get("vintage"),
        "previous_vintage": before.get("vintage"),
        "cpts": records,
        "communes": communes,
        "areas": areas,
    }


def _details(o: Mapping[str, Any], n: Mapping[str, Any], key: str,
             old_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if o.get("cpts") != n.get("cpts"):
        out["renamed_from"] = o.get("cpts")
    if old_id is not None:
        out["cpts_id_before"] = old_id
    for field in ("status", "status_date"):
        if o.get(field) != n.get(field):
            out[field] = [o.get(field), n.get(field)]
    plus = sorted(set(n["communes"]) - set(o["communes"]))
    minus = sorted(set(o["communes"]) - set(n["communes"]))
    if plus:
        out["communes_added"] = plus
    if minus:
        out["communes_removed"] = minus
    so, sn = o.get("shares", {}), n.get("shares", {})
    shares = {c: [so.get(c, 1.0), sn.get(c, 1.0)] for c in sorted(set(so) | set(sn))
              if c in o["communes"] and c in n["communes"] and so.get(c, 1.0) != sn.get(c, 1.0)}
    if shares:
        out["shares"] = shares
    return out


@dataclass(frozen=True)
class Comparison:
    """What changed from one state of the CPTS map to another (:func:`compare`).

    Attributes
    ----------
    cpts : pandas.DataFrame
        One row per CPTS present in either state: ``cpts``, ``cpts_id``, ``change`` (created,
        dissolved, changed, unchanged) and ``details`` (a dict: renamed_from, status,
        status_date, communes_added, communes_removed, shares).
    communes : pandas.DataFrame
        The communes that entered or left coverage or changed CPTS: ``insee``, ``nom``,
        ``change`` (entered, left, moved), ``before``, ``after`` (CPTS ids, "; "-joined).
    areas : pandas.DataFrame
        The coverage of each area touched: its code column, ``nom``, ``before_rate``,
        ``after_rate``, ``delta``, ``before_covered_population``, ``after_covered_population``,
        ``population``.
    result : dict
        The JSON-ready form (see :func:`diff`), with ``areas`` holding every area touched
        (``area``, ``nom``, ``before_rate``, ``after_rate``, ``delta``, ``population``,
        ``before_covered_population``, ``after_covered_population``).
    """

    cpts: pd.DataFrame
    communes: pd.DataFrame
    areas: pd.DataFrame
    result: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"cpts": [...], "communes": [...], "areas": [...]}``."""
        return self.result


@public
def compare(
    communes: pd.DataFrame,
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    by: Level = "departement",
    departements: Iterable[str] | str | None = None,
    as_of: DateLike | None = None,
    statuses: Iterable[str] | str | None = None,
) -> Comparison:
    """Compare two states of the CPTS map: today's against a draft, or two dates.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`); areas are completed as in
        :func:`cpts_geo.coverage`.
    before, after : pandas.DataFrame
        Membership tables (:func:`cpts_geo.read_territories`).
    by : {"departement", "region", "nation"}
        Level of the coverage deltas.
    departements : str or iterable of str, optional
        Report only the CPTS, communes and areas of these départements.
    as_of, statuses
        Filters applied to both states, as in :func:`cpts_geo.coverage`.

    Returns
    -------
    Comparison

    See Also
    --------
    cpts_geo.comparison_map : the communes gained, lost and moved, on a map.
    coverage_timeline : the states of one file at its status dates, compared step by step.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> today = pd.DataFrame({"cpts": ["A", "A", "B"], "insee": ["42218", "42207", "42110"]})
    >>> c = compare(load_communes("42"), today, today[today["cpts"] == "A"])
    >>> c.cpts[["cpts", "change"]].values.tolist()
    [['A', 'unchanged'], ['B', 'dissolved']]
    >>> bool(c.areas["delta"].iloc[0] < 0)  # L'Horme left coverage
    True
    """
    from ..geography import normalize_departements

    deps = normalize_departements(departements, what="departements")
    pa = prepare(communes, before, as_of=as_of, statuses=statuses, whole=by)
    pb = prepare(communes, after, as_of=as_of, statuses=statuses, whole=by)
    return compare_prepared(pa, pb, by, deps)


def compare_prepared(pa: Prepared, pb: Prepared, by: Level = "departement",
                     departements: list[str] | None = None) -> Comparison:
    """What changed from prepared inputs ``pa`` to ``pb`` (see :func:`compare`).

    With ``departements`` (normalised codes), only the CPTS and communes of these départements
    are reported and, by département, only their rates: the areas must be whole there in both
    inputs, the others may be partial.
    """
    mask_a = mask_b = None
    if departements is not None and by == "departement":
        mask_a, mask_b = pa.scoped(departements), pb.scoped(departements)
    ra, rb = area_rates(pa, by, mask=mask_a), area_rates(pb, by, mask=mask_b)
    snap_a, snap_b = snapshot(pa, by, ra), snapshot(pb, by, rb)
    result = diff(snap_a, snap_b)
    if departements is not None:
        keep = set(departements)

        def touches(codes: Iterable[str]) -> bool:
            return any(departement_of(c) in keep for c in codes)

        def communes_of(cid: str | None) -> list[str]:
            return [c for snap in (snap_a, snap_b)
                    for c in snap["cpts"].get(cid or "", {}).get("communes", [])]

        result["cpts"] = [r for r in result["cpts"]
                          if touches(communes_of(r["cpts_id"]))
                          or touches(communes_of(r.get("cpts_id_before")))]
        result["communes"] = [r for r in result["communes"] if touches([r["insee"]])]
    areas = ra.merge(rb, on=[by, "nom", "population"], how="outer", suffixes=("_b", "_a"))
    areas = pd.DataFrame({
        by: areas[by], "nom": areas["nom"],
        "before_rate": areas["coverage_rate_b"], "after_rate": areas["coverage_rate_a"],
        "delta": areas["coverage_rate_a"] - areas["coverage_rate_b"],
        "before_covered_population": areas["covered_population_b"],
        "after_covered_population": areas["covered_population_a"],
        "population": areas["population"],
    })
    if departements is not None and by == "departement":
        areas = areas[areas["departement"].isin(departements)]
    areas = areas.reset_index(drop=True)
    result["areas"] = [
        {"area": str(r[by]), "nom": r["nom"],
         "before_rate": None if pd.isna(r["before_rate"]) else float(r["before_rate"]),
         "after_rate": None if pd.isna(r["after_rate"]) else float(r["after_rate"]),
         "delta": None if pd.isna(r["delta"]) else float(r["delta"]),
         "population": int(r["population"]),
         "before_covered_population": float(r["before_covered_population"]),
         "after_covered_population": float(r["after_covered_population"])}
        for r in areas.to_dict("records")
    ]
    cpts = pd.DataFrame([
        {"cpts": r["cpts"], "cpts_id": r["cpts_id"], "change": r["change"],
         "details": {k: v for k, v in r.items() if k not in ("cpts", "cpts_id", "change")}}
        for r in result["cpts"]
    ], columns=["cpts", "cpts_id", "change", "details"])
    moved = pd.DataFrame(result["communes"], columns=["insee", "nom", "change", "before",
                                                      "after"])
    moved["before"] = moved["before"].map("; ".join)
    moved["after"] = moved["after"].map("; ".join)
    areas.attrs = dict(pb.attrs)
    return Comparison(cpts, moved, areas, result)


# ---------------------------------------------------------------------------------------------
# Coverage over time
# ---------------------------------------------------------------------------------------------
def timeline_figures(p: Prepared, by: Level = "departement") -> pd.DataFrame:
    """The coverage timeline of prepared inputs (see :func:`coverage_timeline`).

    The states of the map are built one status date after the other: the CPTS of a date are
    added to the state of the previous one, and the areas their communes are in are counted
    again with the rules of :func:`~cpts_geo.analysis.rates.area_rates` (shares of a commune
    added up and capped at 1; a CPTS present in an area through any of its communes), so that
    each step is what :func:`compare` reports between two consecutive states (a test checks
    it) at the cost of the CPTS that enter rather than of the whole map. The CPTS without a
    status date are left out; ``attrs["undated_cpts"]`` names them.
    """
    m = p.membership
    undated = sorted(set(m.loc[m["status_date"].isna(), "cpts"].astype(str)))
    c = p.communes
    area_of = (np.full(len(c), NATION, dtype=object) if by == "nation"
               else c[by].astype(str).to_numpy(dtype=object))
    codes, area_idx = np.unique(area_of, return_inverse=True)
    names = area_names(by, codes)
    pop = p.population
    area_pop = np.bincount(area_idx, weights=pop, minlength=len(codes))
    order = np.argsort(area_idx, kind="stable")
    bounds = np.searchsorted(area_idx[order], np.arange(len(codes) + 1))
    members = [order[bounds[i]:bounds[i + 1]] for i in range(len(codes))]
    ins = p.inside
    dated = ins["status_date"].notna().to_numpy()
    days = ins["status_date"].to_numpy().astype("datetime64[ns]")[dated]
    order = np.argsort(days, kind="stable")  # the rows by status date, file order within
    days = days[order]
    pos = ins["pos"].to_numpy()[dated][order]
    share = ins["share"].to_numpy(dtype=float)[dated][order]
    # a CPTS is present in an area from the first of its rows there (in date order)
    pairs = area_idx[pos] * (len(p.cpts_codes[1]) + 1) + p.inside_cpts[dated][order]
    new = np.zeros(len(pairs), dtype=np.int64)
    new[np.unique(pairs, return_index=True)[1]] = 1
    starts = (np.flatnonzero(np.r_[True, days[1:] != days[:-1]]) if len(days)
              else np.zeros(0, dtype=np.int64))
    bounds = np.r_[starts, len(days)].astype(np.int64)
    step = np.repeat(np.arange(len(starts)), np.diff(bounds))
    # the areas each step reaches (sorted), the CPTS new there and the names that entered
    grouped = pd.DataFrame({
        "step": step, "area": area_idx[pos], "new": new,
        "name": ins["cpts"].astype(str).to_numpy(dtype=object)[dated][order],
    }).groupby(["step", "area"], sort=True)
    entered = grouped["name"].agg(lambda n: "; ".join(sorted(set(n))))
    arrived = grouped["new"].sum().to_numpy()
    step_of = entered.index.get_level_values("step").to_numpy()
    area_of_step = entered.index.get_level_values("area").to_numpy()
    claimed = np.zeros(len(c))
    n_cpts = np.zeros(len(codes), dtype=np.int64)
    rate_before = np.zeros(len(codes))
    rows: list[dict[str, Any]] = []
    by_step = np.searchsorted(step_of, np.arange(len(starts) + 1))  # each step's areas
    for i in range(len(starts)):
        np.add.at(claimed, pos[bounds[i]:bounds[i + 1]], share[bounds[i]:bounds[i + 1]])
        day = pd.Timestamp(days[bounds[i]])
        for k in range(by_step[i], by_step[i + 1]):
            a = int(area_of_step[k])
            n_cpts[a] += arrived[k]
            inside = members[a]
            covered = float(np.sum(pop[inside] * np.minimum(claimed[inside], 1.0)))
            rate = covered / area_pop[a] if area_pop[a] > 0 else np.nan
            rows.append({
                by: codes[a], "nom": names[a], "date": day,
                "population": round(area_pop[a]), "covered_population": round(covered, 1),
                "coverage_rate": rate, "delta": rate - rate_before[a], "n_cpts": n_cpts[a],
                "cpts_entered": entered.iat[k],
            })
            rate_before[a] = rate
    out = pd.DataFrame(rows, columns=[by, *TIMELINE_COLUMNS])
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    for col in ("population", "n_cpts"):
        out[col] = out[col].astype("int64")
    for col in ("covered_population", "coverage_rate", "delta"):
        out[col] = out[col].astype(float)
    out = out.sort_values([by, "date"], kind="stable").reset_index(drop=True)
    out.attrs = {**p.attrs, "undated_cpts": "; ".join(undated), "n_undated_cpts": len(undated)}
    return out


@public
def coverage_timeline(
    communes: pd.DataFrame,
    territories: pd.DataFrame,
    *,
    by: Level = "departement",
    statuses: Iterable[str] | str | None = None,
) -> pd.DataFrame:
    """Coverage over time: each area's coverage at each status date that changes it.

    The state of the map at a date holds the CPTS whose status date is on or before it (as
    ``as_of`` does in :func:`cpts_geo.coverage`); the timeline has one row per area and per
    status date at which a CPTS with a commune in that area entered, with the area's figures
    in that state and the CPTS that entered. Each CPTS counts with its perimeter in the file
    from its status date on: a perimeter that changed over time is not retraced. The CPTS
    without a status date are left out, not guessed: a warning names them and
    ``attrs["undated_cpts"]`` lists them, so the last row of an area can be below its
    :func:`cpts_geo.coverage` today. Populations are those of ``communes`` (one vintage for
    every date, ``attrs["population_year"]``), so that a step measures the CPTS that entered,
    not a change of census.

    Every area is whole (missing communes are loaded from the source and vintage of
    ``communes``, with a warning), as in :func:`cpts_geo.coverage`.

    Parameters
    ----------
    communes : geopandas.GeoDataFrame
        Communes (:func:`cpts_geo.load_communes`): the areas reported are those they touch.
    territories : pandas.DataFrame
        Membership table (:func:`cpts_geo.read_territories`) with status dates.
    by : {"departement", "region", "nation"}
        Level of the areas.
    statuses : str or iterable of str, optional
        Count only the CPTS with one of these statuses (e.g. ``["ACI signé"]``).

    Returns
    -------
    pandas.DataFrame
        By area, then date: the area's code column, ``nom``, ``date``, ``population``,
        ``covered_population``, ``coverage_rate`` (0 to 1), ``delta`` (change of the rate at
        this step), ``n_cpts`` (CPTS present in the area), ``cpts_entered`` (names of the CPTS
        that entered at this date, "; "-joined). ``attrs`` carries the vintage,
        ``undated_cpts`` ("; "-joined names) and ``n_undated_cpts``.

    See Also
    --------
    compare : what changed between two states, as each step here.
    cpts_geo.timeline_figure : the same timeline as a step chart.

    Examples
    --------
    >>> import pandas as pd
    >>> from cpts_geo import load_communes
    >>> t = pd.DataFrame({"cpts": ["A", "B"], "insee": ["42218", "42207"],
    ...                   "status_date": ["2020-07-09", "2023-12-07"]})
    >>> tl = coverage_timeline(load_communes("42"), t)
    >>> tl[["departement", "date", "n_cpts", "cpts_entered"]].astype(str).values.tolist()
    [['42', '2020-07-09', '1', 'A'], ['42', '2023-12-07', '2', 'B']]
    >>> bool(tl["coverage_rate"].is_monotonic_increasing)
    True
    """
    _check_level(by)
    needed = ["insee", "population", "departement"] + (["region"] if by == "region" else [])
    p = prepare(communes, territories, statuses=statuses, whole=by, needed=needed)
    out = timeline_figures(p, by)
    if out.attrs["n_undated_cpts"]:
        warn(f"{out.attrs['n_undated_cpts']} CPTS have no status_date and are left out of the "
             f"timeline (their date is not guessed): {out.attrs['undated_cpts']}")
    return out
