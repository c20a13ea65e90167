"""Outlines of groups of communes: the same whether GEOS runs them in one thread or several."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

import cpts_geo
from cpts_geo.analysis import diagnostics


def _each_alone(geoms: np.ndarray, group: np.ndarray, k: int) -> list[bytes | None]:
    out: list[bytes | None] = []
    for i in range(k):
        part = geoms[(group == i) & ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        if len(part) == 0:
            out.append(None)
            continue
        union = shapely.coverage_union_all(part)
        if shapely.get_type_id(union) == 3:
            union = shapely.multipolygons([union])
        out.append(shapely.to_wkb(union))
    return out


@pytest.mark.parametrize("threads", [False, True])
def test_group_outlines_are_each_group_s_own_coverage_union(monkeypatch, threads):
    isere = cpts_geo.load_communes("38")
    geoms = isere.geometry.to_numpy().copy()
    geoms[::40] = None  # missing and empty geometries are left out
    geoms[7::45] = shapely.Polygon()
    k = 70
    group = np.arange(len(geoms)) % 67 * 2 % k  # some groups without communes
    monkeypatch.setattr(diagnostics, "PARALLEL_VERTICES", 0 if threads else 10**12)
    monkeypatch.setattr(diagnostics, "_workers", lambda: 2)
    got = diagnostics.group_outlines(geoms, group, k)
    want = _each_alone(geoms, group, k)
    assert [None if g is None else shapely.to_wkb(g) for g in got] == want
    assert set(shapely.get_type_id(got[got != None]).tolist()) == {6}  # noqa: E711
