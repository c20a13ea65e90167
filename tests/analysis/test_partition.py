"""The partition behind the proposals, on graphs built in code (real data: test_proposals)."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from cpts_geo.analysis.partition import partition


def graph(n, pairs, length=1.0):
    a, b = np.array(pairs, dtype=int).T if pairs else (np.zeros(0, int), np.zeros(0, int))
    m = sparse.coo_matrix((np.full(len(a), length), (a, b)), shape=(n, n)).tocsr()
    return (m + m.T).tocsr()


def grid(n):
    """An n x n grid of nodes (row-major ids), 4-neighbours."""
    pairs = [(i * n + j, i * n + j + 1) for i in range(n) for j in range(n - 1)]
    pairs += [(i * n + j, (i + 1) * n + j) for i in range(n - 1) for j in range(n)]
    return graph(n * n, pairs)


def connected(adj, nodes):
    return len(nodes) <= 1 or connected_components(adj[nodes][:, nodes], directed=False)[0] == 1


def test_path_split_in_equal_parts():
    adj = graph(6, [(i, i + 1) for i in range(5)])
    res = partition(np.full(6, 10.0), np.zeros(6, int), adj, floor=np.full(6, 20.0),
                    max_pop=40.0, target_n=3)
    assert sorted(np.bincount(res.labels).tolist()) == [2, 2, 2]
    assert all(connected(adj, np.flatnonzero(res.labels == k)) for k in range(3))
    assert res.kind == ["split"] * 3


def test_grid_bounds_target_and_epci_quadrants():
    """12 x 12 nodes of 1,000, four EPCI quadrants: 8 groups of 18,000, none across a quadrant;
    4 groups: the quadrants exactly."""
    n = 12
    adj = grid(n)
    epci = np.array([(i >= 6) * 2 + (j >= 6) for i in range(n) for j in range(n)])
    pop = np.full(n * n, 1000.0)
    res = partition(pop, epci, adj, floor=np.full(n * n, 15_000.0), max_pop=40_000.0,
                    target_n=8)
    sizes = np.bincount(res.labels, weights=pop)
    assert len(sizes) == 8 and ((sizes >= 15_000) & (sizes <= 40_000)).all()
    for k in range(8):
        members = np.flatnonzero(res.labels == k)
        assert connected(adj, members) and len(set(epci[members])) == 1
    res = partition(pop, epci, adj, floor=np.full(n * n, 15_000.0), max_pop=40_000.0,
                    target_n=4)
    assert sorted(tuple(sorted(set(epci[res.labels == k]))) for k in range(4)) == [
        (0,), (1,), (2,), (3,)]


def test_above_max_island_and_attached_zone():
    # a path 0-1-2-3-4 and an island 5; node 2 is above the ceiling
    adj = graph(6, [(0, 1), (1, 2), (2, 3), (3, 4)])
    pop = np.array([30.0, 30, 500, 50, 60, 5])
    res = partition(pop, np.zeros(6, int), adj, floor=np.full(6, 40.0), max_pop=200.0)
    groups = {tuple(np.flatnonzero(res.labels == k)): res.kind[k] for k in range(len(res.kind))}
    assert groups == {(2,): "above_max", (0, 1): "split", (3, 4): "split", (5,): "alone"}
    # a piece too small, cut off by the big commune, joins it (it is its only neighbour)
    pop = np.array([10.0, 10, 500, 50, 60, 5])
    res = partition(pop, np.zeros(6, int), adj, floor=np.full(6, 40.0), max_pop=200.0)
    big = int(res.labels[2])
    assert set(np.flatnonzero(res.labels == big)) == {0, 1, 2}
    assert [a.tolist() for a in res.attached[big]] == [[0, 1]]
    assert res.summary["n_attached"] == 1 and res.summary["n_alone"] == 1


def test_floors_split_zones_and_small_fragments_are_attached():
    """Nodes 0-3 are mountain (floor 10), 4-7 not (floor 40): links between them are cut; the
    lowland node 4 (5 inhabitants), whose only neighbour is mountain node 3, joins its group."""
    adj = graph(8, [(0, 1), (1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (6, 7)])
    pop = np.array([6.0, 6, 6, 6, 5, 20, 20, 20])
    floor = np.array([10.0] * 4 + [40.0] * 4)
    res = partition(pop, np.zeros(8, int), adj, floor=floor, max_pop=100.0, target_n=3)
    assert res.summary["possible_max"] == 3 and len(res.kind) == 3
    groups = [set(np.flatnonzero(res.labels == k).tolist()) for k in range(3)]
    assert {5, 6, 7} in groups
    assert {2, 3, 4} in groups or {3, 4} <= next(g for g in groups if 3 in g)
    for k in range(3):
        assert connected(adj, np.flatnonzero(res.labels == k))
    k = int(res.labels[4])
    assert [a.tolist() for a in res.attached[k]] == [[4]]
    assert res.floor[k] == 10.0


def test_no_edges_and_empty_input():
    res = partition(np.array([50.0, 50.0]), np.array([0, 1]), graph(2, []),
                    floor=np.full(2, 40.0), max_pop=200.0)
    assert sorted(res.labels.tolist()) == [0, 1] and len(res.zones) == 2
    res = partition(np.zeros(0), np.zeros(0, int), graph(0, []), floor=np.zeros(0),
                    max_pop=10.0)
    assert len(res.labels) == 0 and res.kind == [] and res.summary["possible_max"] == 0


def test_deterministic_and_seeded():
    adj = grid(10)
    pop = np.arange(100, dtype=float) % 7 * 100 + 500
    kw = {"floor": np.full(100, 8_000.0), "max_pop": 20_000.0, "target_n": 6}
    a = partition(pop, np.zeros(100, int), adj, seed=0, **kw).labels
    assert np.array_equal(a, partition(pop, np.zeros(100, int), adj, seed=0, **kw).labels)
    b = partition(pop, np.zeros(100, int), adj, seed=1, **kw).labels
    assert not np.array_equal(a, b)


def test_unreachable_target_is_clamped():
    adj = grid(6)
    pop = np.full(36, 1000.0)
    res = partition(pop, np.zeros(36, int), adj, floor=np.full(36, 10_000.0),
                    max_pop=20_000.0, target_n=50)
    assert res.summary["possible_max"] == 3 and len(res.kind) == 3
    res = partition(pop, np.zeros(36, int), adj, floor=np.full(36, 10_000.0),
                    max_pop=20_000.0, target_n=0)
    assert res.summary["possible_min"] == 2 and len(res.kind) == 2
