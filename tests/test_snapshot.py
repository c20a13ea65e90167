"""The memo of prepared inputs is reused only while the frames hold what they held."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import cpts_geo
from cpts_geo._snapshot import snapshot


def _frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({
        "insee": pd.Series(["38185", "38421"], dtype="str"),
        "obj": pd.Series(["a", "b"], dtype=object),
        "population": pd.Series([10, 20], dtype="Int64"),
        "area": [1.5, np.nan],
        "status": pd.Categorical(["ACI signé", None], categories=list(cpts_geo.STATUSES)),
        "date": pd.to_datetime(["2020-01-01", None]),
        "geometry": [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
    }, crs=4326)


CHANGES = {
    "str": lambda f: f.loc.__setitem__((0, "insee"), "38001"),
    "object": lambda f: f.loc.__setitem__((1, "obj"), "c"),
    "masked": lambda f: f.loc.__setitem__((0, "population"), 11),
    "masked to missing": lambda f: f.loc.__setitem__((0, "population"), pd.NA),
    "float": lambda f: f.loc.__setitem__((1, "area"), 2.0),
    "categorical": lambda f: f.loc.__setitem__((1, "status"), "pré-projet"),
    "datetime": lambda f: f.loc.__setitem__((1, "date"), pd.Timestamp("2021-01-01")),
    "geometry": lambda f: f.loc.__setitem__((0, "geometry"), shapely.box(0, 0, 2, 2)),
    "crs": lambda f: f.set_crs(2154, allow_override=True, inplace=True),
    "attrs": lambda f: f.attrs.__setitem__("cog_year", 2099),
    "index": lambda f: setattr(f, "index", pd.Index([5, 6])),
    "columns": lambda f: setattr(f, "columns", [*f.columns[:-2], "when", "geometry"]),
    "new column": lambda f: f.__setitem__("x", 1),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_breaks_the_snapshot(change):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = _frame()
        snap = snapshot(f)
        assert snap is not None and snap.matches(f) and snap.matches(f.copy())
        CHANGES[change](f)
    assert not snap.matches(f)


def test_a_changed_population_changes_the_coverage():
    communes = cpts_geo.load_communes("38")
    t = pd.DataFrame({"cpts": ["A", "A"], "insee": ["38185", "38421"]})
    before = cpts_geo.cpts_table(communes, t)["population"].iloc[0]
    assert cpts_geo.cpts_table(communes, t)["population"].iloc[0] == before  # memo
    at = communes.index[communes["insee"] == "38185"][0]
    communes.loc[at, "population"] = communes.loc[at, "population"] + 1000
    assert cpts_geo.cpts_table(communes, t)["population"].iloc[0] == before + 1000
    t.loc[1, "insee"] = "38053"
    assert cpts_geo.cpts_table(communes, t)["n_communes"].iloc[0] == 2
    assert cpts_geo.cpts_table(communes, t)["population"].iloc[0] != before + 1000
