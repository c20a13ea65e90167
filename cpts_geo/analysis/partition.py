"""Split a graph of communes into contiguous groups within population bounds.

The method behind :func:`cpts_geo.propose_territories`, on integer node ids and a sparse matrix
of shared border lengths (numpy and scipy only, no geometry):

1. **Zones.** A commune above the ceiling is a group of its own (a commune is never split). The
   other communes fall into connected zones; two neighbours with different floors (a mountain
   commune and another) are not linked, so a zone has one floor. A zone below its floor (an
   enclave, an island, a valley cut off by covered communes) is attached, once the others are
   split, to the neighbouring group it shares the longest border with (when it had a link cut
   above), or kept alone.
2. **Counts.** A zone of P inhabitants can hold k groups with ceil(P / max) <= k <= floor(P /
   min), and k <= floor((P - g) / min) + 1 when its largest commune g is above the floor. A
   target count is shared out among zones by D'Hondt within these limits; without one, each
   zone gets round(P / sqrt(min * max)) groups, in the geometric middle of the bounds.
3. **Split: recursive spanning-tree bisection** (the idea of ReCom in redistricting). Random
   minimum spanning trees of the zone are drawn from a seeded generator, preferring long shared
   borders; with ``respect`` an edge between two EPCI weighs more, so that every EPCI is a
   subtree. Cutting one tree edge leaves two connected parts; the cuts whose sides can still
   hold k1 and k - k1 groups within the bounds are ranked by EPCI split (cheaper for an EPCI
   above the ceiling, which must be split anyway), deviation from the ideal size and
   normalised cut of border length (compactness); the search recurses and backtracks within a
   bounded number of calls. If k groups are not found, a binary search finds the largest k that
   splits, then local re-splits add groups one at a time (one group into two, or two neighbours
   into three).
4. **Polish.** A boundary commune moves to the group it shares the most border with when both
   stay within bounds and connected and no EPCI is split further.

The same inputs and seed give the same result: randomness comes only from
``numpy.random.default_rng([seed, zone, k])`` (numpy's global state is never used), and callers
number the nodes in a canonical order (by INSEE code). scipy is imported when a partition is
computed, not when :mod:`cpts_geo` is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Partition", "Zone", "partition"]

#: Ranking of the cuts: weight of an EPCI split, of the deviation from the ideal size, of the
#: normalised cut (compactness).
W_EPCI, W_BALANCE, W_CUT = 1.0, 0.25, 1.0
#: Cost of splitting an EPCI above the ceiling (it must be split anyway), instead of 1.
EPCI_ABOVE_MAX_COST = 0.3
#: Tree weights: 1 + U(0, 1) * (median length / length) ** LENGTH_EXP, + EPCI_CROSS between EPCI.
EPCI_CROSS, LENGTH_EXP = 4.0, 0.5
#: Trees drawn per split (at least, at most) and cuts tried per split.
N_TREES, MAX_TREES, N_TRIES = 3, 6, 3
#: Bounded search: split calls per attempt at one count, per zone once a count works, per local
#: re-split.
MAX_CALLS, ZONE_CALLS, LOCAL_CALLS = 150, 300, 10
#: Passes of the polish.
POLISH_PASSES = 20


@dataclass
class Zone:
    """A connected zone of the graph (links between different floors cut), before splitting.

    Attributes
    ----------
    nodes : numpy.ndarray
        Its node ids.
    population, floor : float
        Its inhabitants and the floor of its groups.
    kmin, kmax, want, got : int
        Groups it can hold within the bounds (at least, at most), asked of it, obtained.
    small : bool
        Below its floor: attached to a neighbouring group, or kept alone.
    note : str
        Why ``got`` differs from ``want`` (empty otherwise).
    """

    nodes: np.ndarray
    population: float
    floor: float
    kmin: int = 1
    kmax: int = 1
    want: int = 1
    got: int = 0
    small: bool = False
    note: str = ""


@dataclass
class Partition:
    """The groups of a :func:`partition`.

    Attributes
    ----------
    labels : numpy.ndarray
        Group of each node, 0 the most populous.
    kind : list of str
        Per group: ``"split"`` (a part of a zone, or a whole zone within the bounds),
        ``"alone"`` (a zone below its floor with no group to join), ``"above_max"`` (one
        commune above the ceiling), ``"no_floor"`` (a part of a zone no split of which meets
        both bounds: the floor was given up).
    floor : numpy.ndarray
        Per group, its floor.
    attached : list of list of numpy.ndarray
        Per group, the zones below the floor attached to it (node ids).
    zones : list of Zone
        The zones; ``zone_of`` gives each group's.
    zone_of : numpy.ndarray
        Per group, the index of its zone in ``zones`` (-1 for a commune above the ceiling).
    summary : dict
        ``target_n``, ``possible_min``, ``possible_max`` (groups the bounds allow in all),
        ``n_attached`` (zones attached), ``n_alone``, ``n_above_max``.
    """

    labels: np.ndarray
    kind: list[str]
    floor: np.ndarray
    attached: list[list[np.ndarray]]
    zones: list[Zone]
    zone_of: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)


def _connected(adj: Any, nodes: np.ndarray) -> bool:
    from scipy.sparse.csgraph import connected_components

    return len(nodes) <= 1 or connected_components(adj[nodes][:, nodes], directed=False)[0] == 1


class _Splitter:
    """Recursive spanning-tree bisection of a connected set of nodes into k groups."""

    def __init__(self, pop: np.ndarray, epci: np.ndarray, adj: Any, lo: float, hi: float,
                 respect: bool, rng: np.random.Generator, max_calls: int = MAX_CALLS):
        self.pop, self.epci, self.adj = pop, epci, adj
        self.lo, self.hi, self.respect, self.rng = lo, hi, respect, rng
        self.calls, self.max_calls = 0, max_calls

    def cuts(self, nodes: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """Up to N_TRIES tree cuts (side a, side b, k1 groups in a), best first."""
        from scipy import sparse
        from scipy.sparse.csgraph import depth_first_order, minimum_spanning_tree

        m, total, lo, hi = len(nodes), self.pop[nodes].sum(), self.lo, self.hi
        if m < k:
            return []
        sub = self.adj[nodes][:, nodes].tocoo()
        up = sub.row < sub.col
        ei, ej, w = sub.row[up], sub.col[up], sub.data[up]
        pop = self.pop[nodes]
        e = np.unique(self.epci[nodes], return_inverse=True)[1].ravel()
        onehot = np.zeros((m, e.max() + 1))
        onehot[np.arange(m), e] = 1
        e_tot = onehot.sum(0)
        e_cost = np.where(onehot.T @ pop > hi, EPCI_ABOVE_MAX_COST, 1.0)
        # ideal sizes: a commune above total/k makes a group of about its own size, the other
        # groups share the rest equally
        g_top = pop.max()
        avg = (total - g_top) / (k - 1) if g_top > total / k else total / k
        out: list[tuple[float, np.ndarray, int]] = []
        for t in range(MAX_TREES):  # N_TREES trees, more while fewer than N_TRIES cuts found
            if t >= N_TREES and len(out) >= N_TRIES:
                break
            tw = 1.0 + self.rng.random(len(w)) * (np.median(w) / w) ** LENGTH_EXP
            if self.respect:
                tw += EPCI_CROSS * (e[ei] != e[ej])
            tree = minimum_spanning_tree(sparse.coo_matrix((tw, (ei, ej)), shape=(m, m)))
            order, pred = depth_first_order(tree, 0, directed=False, return_predecessors=True)
            if len(order) < m:
                raise ValueError("cannot split a disconnected set of communes")
            size, sub_pop, sub_max = np.ones(m, int), pop.astype(float), pop.astype(float)
            for v in order[:0:-1]:  # subtree sizes, populations and largest communes
                size[pred[v]] += size[v]
                sub_pop[pred[v]] += sub_pop[v]
                sub_max[pred[v]] = max(sub_max[pred[v]], sub_max[v])
            pos = np.empty(m, int)
            pos[order] = np.arange(m)
            c = order[1:]  # cutting the edge above c: side a = subtree of c (a run of the order)
            ps, rest = sub_pop[c], total - sub_pop[c]
            start, end = pos[c], pos[c] + size[c]
            g = pop[order]
            pre, suf = np.maximum.accumulate(g), np.maximum.accumulate(g[::-1])[::-1]
            g_in = sub_max[c]
            g_out = np.maximum(pre[start - 1], np.where(end < m, suf[np.minimum(end, m - 1)], 0))
            # k1 groups in a, k - k1 in b: each side within [k1 * min, k1 * max], and at least
            # its largest commune + (k1 - 1) * min
            k1_lo = np.maximum.reduce([np.ones_like(ps), np.ceil(ps / hi), k - np.floor(rest / lo),
                                       k - 1 - np.floor((rest - g_out) / lo)])
            k1_hi = np.minimum.reduce([np.full_like(ps, k - 1), np.floor(ps / lo),
                                       np.floor((ps - g_in) / lo) + 1, k - np.ceil(rest / hi)])
            ok = k1_lo <= k1_hi
            if not ok.any():
                continue
            c, ps, start, end = c[ok], ps[ok], start[ok], end[ok]
            extra = (g_in[ok] == g_top) * (g_top - avg) if g_top > total / k else 0.0
            k1 = np.clip(np.round((ps - extra) / avg), k1_lo[ok], k1_hi[ok])
            inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
            a, b = inside[:, ei], inside[:, ej]
            cut = (a != b) @ w
            vol_a = 2 * ((a & b) @ w) + cut
            vol_b = 2 * w.sum() - vol_a
            ncut = cut / np.maximum(vol_a, 1e-9) + cut / np.maximum(vol_b, 1e-9)
            cnt = inside @ onehot
            split = ((cnt > 0) & (cnt < e_tot)) @ e_cost
            dev = np.abs(ps - extra - k1 * avg) / avg
            score = W_EPCI * split * self.respect + W_BALANCE * dev + W_CUT * ncut
            out += [(float(s), inside[i], int(k1[i])) for i, s in enumerate(score)]
        out.sort(key=lambda item: item[0])
        seen: set[bytes] = set()
        best: list[tuple[np.ndarray, np.ndarray, int]] = []
        for _, mask, k1_ in out:
            key = mask.tobytes()
            if key not in seen and len(best) < N_TRIES:
                seen.add(key)
                best.append((nodes[mask], nodes[~mask], k1_))
        return best

    def split(self, nodes: np.ndarray, k: int) -> list[np.ndarray] | None:
        """K connected node arrays within the bounds, or None (also when out of calls)."""
        if k == 1:
            return [nodes]
        self.calls += 1
        if self.calls > self.max_calls:
            return None
        for a, b, k1 in self.cuts(nodes, k):
            left = self.split(a, k1)
            right = self.split(b, k - k1) if left is not None else None
            if left is not None and right is not None:
                return left + right
        return None


def _add_groups(parts: list[np.ndarray], n_more: int, pop: np.ndarray, epci: np.ndarray,
                adj: Any, lo: float, hi: float, respect: bool,
                rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``n_more`` extra groups by local re-splits, the most populous groups first.

    One group into two, or two neighbouring groups into three.
    """
    parts = list(parts)
    while n_more > 0:
        nodes = np.concatenate(parts)
        lab = np.empty(adj.shape[0], int)
        for i, p in enumerate(parts):
            lab[p] = i
        sub = adj[nodes][:, nodes].tocoo()
        la, lb = lab[nodes[sub.row]], lab[nodes[sub.col]]
        pairs = {(a, b) for a, b in zip(la.tolist(), lb.tolist(), strict=True) if a < b}
        ppop = [pop[p].sum() for p in parts]
        groups: list[tuple[int, ...]] = [(i,) for i in range(len(parts)) if ppop[i] >= 2 * lo]
        groups += [g for g in sorted(pairs) if ppop[g[0]] + ppop[g[1]] >= 3 * lo]
        groups.sort(key=lambda g: -sum(ppop[i] for i in g) / (len(g) + 1))
        for g in groups:
            splitter = _Splitter(pop, epci, adj, lo, hi, respect, rng, LOCAL_CALLS)
            res = splitter.split(np.concatenate([parts[i] for i in g]), len(g) + 1)
            if res is not None:
                parts = [p for i, p in enumerate(parts) if i not in g] + res
                n_more -= 1
                break
        else:
            break
    return parts


def _split_zone(zone: Zone, z: int, pop: np.ndarray, epci: np.ndarray, adj: Any, hi: float,
                respect: bool, seed: int) -> tuple[list[np.ndarray], bool]:
    """The zone's groups, and whether the floor had to be given up.

    ``zone.want`` groups if found, else as many as the search reaches; sets ``zone.got`` and
    ``zone.note``.
    """
    nodes, want, lo = zone.nodes, zone.want, zone.floor
    spent = [0]

    def attempt(k: int, floor: float = lo, optional: bool = False) -> list[np.ndarray] | None:
        calls = min(MAX_CALLS, ZONE_CALLS - spent[0]) if optional else MAX_CALLS
        if calls <= 0:
            return None
        splitter = _Splitter(pop, epci, adj, floor, hi, respect,
                             np.random.default_rng([seed, z, k]), calls)
        parts = splitter.split(nodes, k)
        spent[0] += splitter.calls
        return parts

    if (parts := attempt(want)) is not None:
        zone.got = want
        return parts, False
    best: tuple[int, list[np.ndarray]] | None = None
    a, b = zone.kmin, want - 1
    while a <= b:  # binary search, assuming fewer groups are easier
        mid = (a + b + 1) // 2
        if (found := attempt(mid, optional=best is not None)) is not None:
            best, a = (mid, found), mid + 1
        else:
            b = mid - 1
    for k in range(want + 1, min(zone.kmax, want + 3) + 1):  # fewer failed: maybe more fit
        if best is None and (found := attempt(k)) is not None:
            best = (k, found)
    if best is not None:
        k, parts = best
        if k < want:
            parts = _add_groups(parts, want - k, pop, epci, adj, lo, hi, respect,
                                np.random.default_rng([seed, z, 0]))
        zone.got = len(parts)
        if len(parts) != want:
            zone.note = (f"the search within the bounds reached {len(parts)} of {want} "
                         "candidates (the geography, or the bounded search)")
        return parts, False
    for k in range(zone.kmin, zone.kmax + 3):  # last resort: give up the floor, keep the ceiling
        if (found := attempt(k, floor=1e-6)) is not None:
            zone.got = k
            zone.note = "no split meets both bounds: the floor is given up"
            return found, True
    zone.got = 1
    zone.note = "no split found: the whole zone is one candidate"
    return [nodes], True


def _polish(adj: Any, pop: np.ndarray, epci: np.ndarray, labels: np.ndarray,
            movable: np.ndarray, floor: np.ndarray, hi: float, respect: bool) -> np.ndarray:
    """Move boundary nodes to the group they share the most border with.

    A node moves when it shares 5 % more border with that group than with its own, both groups
    stay within bounds and connected and, with ``respect``, its EPCI is not spread over more
    groups. Each move lengthens the internal borders, so the loop ends.
    """
    n_groups = labels.max() + 1
    gpop = np.bincount(labels, weights=pop, minlength=n_groups)
    ecount = np.zeros((epci.max() + 1, n_groups), int)
    np.add.at(ecount, (epci, labels), 1)
    for _ in range(POLISH_PASSES):
        moved = False
        for v in range(len(pop)):
            r, e = labels[v], epci[v]
            sl = slice(adj.indptr[v], adj.indptr[v + 1])
            if sl.start == sl.stop:
                continue
            border = np.bincount(labels[adj.indices[sl]], weights=adj.data[sl],
                                 minlength=n_groups)
            s = int(np.argmax(border))
            if (s == r or border[s] <= 1.05 * border[r] or not movable[r] or not movable[s]
                    or gpop[r] - pop[v] < floor[r] or gpop[s] + pop[v] > hi
                    or gpop[s] + pop[v] < floor[s]
                    or (respect and ecount[e, s] == 0 and ecount[e, r] > 1)):
                continue
            rest = np.flatnonzero(labels == r)
            if not _connected(adj, rest[rest != v]):
                continue
            labels[v] = s
            gpop[[r, s]] += [-pop[v], pop[v]]
            ecount[e, [r, s]] += [-1, 1]
            moved = True
        if not moved:
            break
    return labels


def partition(
    pop: np.ndarray,
    epci: np.ndarray,
    adj: Any,
    *,
    floor: np.ndarray,
    max_pop: float,
    target_n: int | None = None,
    respect: bool = True,
    seed: int = 0,
) -> Partition:
    """Partition the nodes into contiguous groups within population bounds (see the module).

    Parameters
    ----------
    pop : numpy.ndarray
        Inhabitants of each node (float, no NaN).
    epci : numpy.ndarray
        EPCI of each node as integer ids 0..n_epci-1 (a node in no EPCI: an id of its own).
    adj : scipy.sparse.csr_matrix
        Symmetric matrix of shared border lengths (> 0) between nodes.
    floor : numpy.ndarray
        Floor of each node's group (the lowest population a group may have); nodes with
        different floors are never linked in one zone.
    max_pop : float
        Ceiling of a group's population.
    target_n : int, optional
        Number of groups wanted (clamped to what the bounds and the geography allow). None:
        groups of about sqrt(floor * max_pop) inhabitants.
    respect : bool
        Follow EPCI boundaries wherever the bounds allow.
    seed : int
        Seed of the local random generators.

    Returns
    -------
    Partition

    Examples
    --------
    >>> from scipy import sparse
    >>> path = sparse.csr_matrix(np.eye(6, k=1) + np.eye(6, k=-1))  # 0-1-2-3-4-5
    >>> pop = np.array([10.0, 10, 12, 12, 14, 14])
    >>> res = partition(pop, np.zeros(6, int), path, floor=np.full(6, 20.0), max_pop=40.0,
    ...                 target_n=3)
    >>> res.labels.tolist()  # group 0 is the most populous
    [2, 2, 1, 1, 0, 0]
    """
    from scipy.sparse.csgraph import connected_components

    n, hi = len(pop), float(max_pop)
    pop = np.asarray(pop, dtype=float)
    floor = np.asarray(floor, dtype=float)
    labels = np.full(n, -1)
    kinds: list[str] = []
    gfloor: list[float] = []
    attached: list[list[np.ndarray]] = []
    zone_of: list[int] = []

    def new_group(nodes: np.ndarray, kind: str, lo: float, z: int) -> int:
        labels[nodes] = len(kinds)
        kinds.append(kind)
        gfloor.append(lo)
        attached.append([])
        zone_of.append(z)
        return len(kinds) - 1

    # 1. communes above the ceiling; zones (links between different floors cut)
    big = np.flatnonzero(pop > hi)
    for v in big:
        new_group(np.array([v]), "above_max", float(floor[v]), -1)
    coo = adj.tocoo()
    keep = (floor[coo.row] == floor[coo.col]) & (pop[coo.row] <= hi) & (pop[coo.col] <= hi)
    from scipy import sparse

    zadj = sparse.coo_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])),
                             shape=(n, n)).tocsr()
    rest = np.setdiff1d(np.arange(n), big)
    comp = connected_components(zadj[rest][:, rest], directed=False)[1] if len(rest) else rest
    zones = [Zone(rest[comp == c], float(pop[rest[comp == c]].sum()),
                  float(floor[rest[comp == c][0]]))
             for c in range(comp.max() + 1 if len(rest) else 0)]
    touching = np.asarray((adj != 0).sum(axis=1)).ravel() if n else np.zeros(0)
    for zone in zones:
        if zone.population < zone.floor:
            zone.small = True
            zone.kmin = zone.kmax = zone.want = 0
        else:
            lo = zone.floor
            zone.kmin = max(1, math.ceil(zone.population / hi))
            zone.kmax = max(zone.kmin, min(
                math.floor(zone.population / lo),
                math.floor((zone.population - pop[zone.nodes].max()) / lo) + 1))
    flexible = [z for z, zone in enumerate(zones) if not zone.small]
    # a small zone with a link cut above joins a neighbouring group; one with none stays alone
    small = [z for z, zone in enumerate(zones) if zone.small]
    joins = {z for z in small
             if touching[zones[z].nodes].sum() > (zadj[zones[z].nodes] != 0).sum()}
    n_fixed = len(big) + sum(1 for z in small if z not in joins)

    # 2. how many groups per zone
    if target_n is None:
        for z in flexible:
            zone = zones[z]
            ideal = round(zone.population / math.sqrt(zone.floor * hi))
            zone.want = min(max(ideal, zone.kmin), zone.kmax)
    else:  # D'Hondt: each extra group to the zone with the most inhabitants per group
        for z in flexible:
            zones[z].want = zones[z].kmin
        for _ in range(max(0, int(target_n) - n_fixed - sum(zones[z].kmin for z in flexible))):
            open_ = [z for z in flexible if zones[z].want < zones[z].kmax]
            if not open_:
                break
            z = max(open_, key=lambda z: (zones[z].population / (zones[z].want + 1), -z))
            zones[z].want += 1

    # 3. split the zones
    for z in flexible:
        zone = zones[z]
        parts, no_floor = _split_zone(zone, z, pop, epci, zadj, hi, respect, seed)
        for part in parts:
            below = pop[part].sum() < zone.floor
            new_group(part, "no_floor" if no_floor and below else "split", zone.floor, z)
    # small zones: join the neighbouring group with the longest shared border that stays under
    # the ceiling (or a commune already above it); else alone
    gpop = np.bincount(labels[labels >= 0], weights=pop[labels >= 0], minlength=len(kinds))
    pending = sorted(small, key=lambda z: (-zones[z].population, z))
    progress = True
    while pending and progress:
        progress = False
        for z in list(pending):
            zone = zones[z]
            sub = adj[zone.nodes].tocoo()
            nb = labels[sub.col]
            ok = nb >= 0
            if not ok.any():
                continue
            border = np.bincount(nb[ok], weights=sub.data[ok], minlength=len(kinds))
            fits = [g for g in np.flatnonzero(border)
                    if gpop[g] + zone.population <= hi or kinds[g] == "above_max"]
            pending.remove(z)
            progress = True
            if not fits:
                zone.note = "joining a neighbouring candidate would exceed the ceiling"
                zone.got = 1
                new_group(zone.nodes, "alone", zone.floor, z)
                gpop = np.append(gpop, zone.population)
                continue
            g = max(fits, key=lambda g: (border[g], -g))
            labels[zone.nodes] = g
            attached[g].append(zone.nodes)
            gpop[g] += zone.population
            zone.got = 0
    for z in pending:
        zones[z].got = 1
        new_group(zones[z].nodes, "alone", zones[z].floor, z)

    # 4. polish (groups of split zones only), renumber (most populous first)
    if n:
        movable = np.array([k == "split" and not attached[g] for g, k in enumerate(kinds)])
        labels = _polish(zadj, pop, epci, labels, movable, np.array(gfloor), hi, respect)
    sizes = np.bincount(labels, weights=pop, minlength=len(kinds)) if n else np.zeros(0)
    order = np.lexsort((np.arange(len(sizes)), -sizes))
    new = np.empty(len(sizes), int)
    new[order] = np.arange(len(sizes))
    summary = {
        "target_n": target_n,
        "possible_min": n_fixed + sum(zones[z].kmin for z in flexible),
        "possible_max": n_fixed + sum(zones[z].kmax for z in flexible),
        "n_attached": sum(len(a) for a in attached),
        "n_alone": kinds.count("alone"),
        "n_above_max": len(big),
    }
    return Partition(
        labels=new[labels] if n else labels,
        kind=[kinds[i] for i in order],
        floor=np.array(gfloor, dtype=float)[order] if n else np.zeros(0),
        attached=[attached[i] for i in order],
        zones=zones,
        zone_of=np.array(zone_of, dtype=int)[order] if n else np.zeros(0, int),
        summary=summary,
    )
