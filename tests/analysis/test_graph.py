"""The contiguity graph shared by gap zones, CPTS parts, map colouring and proposals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cpts_geo
from cpts_geo.analysis.graph import ContiguityGraph
from cpts_geo.analysis.inputs import bundled_graph


def test_components_need_a_border_of_positive_length():
    links = pd.DataFrame({"a": ["1", "2", "3", "1"], "b": ["2", "3", "", "4"],
                          "length_km": [1.0, 0.0, 2.5, 3.0]})
    g = ContiguityGraph(links)  # pairs given one way are made symmetric
    assert g.components(["1", "2", "3", "4"]).tolist() == [0, 0, 1, 0]  # 2-3 touch at a point
    assert g.neighbours("1") == ["2", "4"] and g.neighbours("4") == ["1"]
    assert g.components(["1", "9"]).tolist() == [0, 1]  # an unknown code is alone
    border = g.border(["3"])
    assert border.values.tolist() == [["3", "", 2.5]]
    assert len(g.edges()) == 2 and len(g.edges(touching=True)) == 3


def test_bundled_graph_at_both_granularities():
    g = bundled_graph()
    lyon, lyon3 = "69123", "69383"
    whole = g.at_granularity(["69266"])
    split = g.at_granularity([lyon3])
    assert lyon in whole.neighbours("69266") and lyon3 not in whole.neighbours("69266")
    assert lyon not in split.neighbours("69266") and "69386" in split.neighbours("69266")
    # Villeurbanne borders Lyon 6e; L'Horme borders Saint-Chamond
    assert "42207" in g.neighbours("42110")


def test_group_components_count_the_parts_of_each_cpts_at_once():
    g = bundled_graph()
    rows = pd.DataFrame({"cpts_id": ["a", "a", "a", "b", "b"],
                         "insee": ["38421", "38309", "38158", "38421", "38053"]})
    labels = g.group_components(rows)
    assert len(set(labels[:3])) == 1 and labels[3] != labels[4]
    assert not set(labels[:3]) & set(labels[3:])


def test_libpysal_adapter():
    pytest.importorskip("libpysal")
    loire = cpts_geo.load_communes("42")["insee"].tolist()
    graph = bundled_graph().to_libpysal(loire)
    assert graph.n == 320
    assert "42207" in set(graph["42110"].index)  # L'Horme borders Saint-Chamond
    # weights are the shared border lengths
    edge = bundled_graph().edges(["42110", "42207"])
    assert graph["42110"]["42207"] == pytest.approx(edge["length_km"].iloc[0])
    assert np.isclose(graph.adjacency.sum(), 2 * bundled_graph().edges(loire)["length_km"].sum())


def _components_by_search(g: ContiguityGraph, node: np.ndarray, group: np.ndarray) -> list[int]:
    """Reference: rows joined when their communes share a border and their groups are equal."""
    n = len(node)
    label = [-1] * n
    for first in range(n):
        if label[first] >= 0:
            continue
        label[first] = first
        stack = [first]
        while stack:
            r = stack.pop()
            if node[r] < 0:
                continue
            nb = set(g.nodes(g.neighbours(g.codes[node[r]])).tolist())
            for s in range(n):
                if label[s] < 0 and group[s] == group[r] and node[s] in nb:
                    label[s] = first
                    stack.append(s)
    return label


def test_node_group_components_match_a_search_with_communes_in_several_groups():
    g = bundled_graph()
    loire = g.nodes(cpts_geo.load_communes("42")["insee"].head(60))
    rng = np.random.default_rng(3)
    for _ in range(5):
        node = rng.choice(np.concatenate([loire, [-1]]), size=90)  # repeats: several groups
        group = rng.integers(0, 3, size=90)
        got = g.node_group_components(node, group)
        want = _components_by_search(g, node, group)
        assert len(set(zip(got.tolist(), want, strict=True))) == len(set(want)) == len(set(got))


def _labels_by_search(n, a, b):
    """Components numbered by their smallest node, by a plain search (independent of scipy)."""
    nbrs = [[] for _ in range(n)]
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        nbrs[x].append(y)
        nbrs[y].append(x)
    label = [-1] * n
    count = 0
    for start in range(n):
        if label[start] < 0:
            label[start], todo = count, [start]
            while todo:
                for y in nbrs[todo.pop()]:
                    if label[y] < 0:
                        label[y] = count
                        todo.append(y)
            count += 1
    return label


def test_connected_labels_number_components_by_their_smallest_node():
    from cpts_geo.analysis.graph import connected_labels

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 200))
        if trial % 3 == 0:  # a long chain in random order
            perm = rng.permutation(n)
            a, b = perm[:-1], perm[1:]
        else:
            a, b = rng.integers(0, n, size=(2, int(rng.integers(0, 2 * n))))
        assert connected_labels(n, a, b).tolist() == _labels_by_search(n, a, b)
    assert connected_labels(0, np.zeros(0), np.zeros(0)).tolist() == []
