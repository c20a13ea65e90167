"""Downloads written from a table converted once and sliced (the site's national tables) are the
bytes the page's own rows would give: CSV for programs and for Excel, GeoJSON, workbook."""

from __future__ import annotations

import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from cpts_geo.publishing.render import Table, write_downloads


def _table(with_newline: bool) -> gpd.GeoDataFrame:
    names = ["Gier", "=HYPERLINK(1)", "L'Haÿ ; « x »", "Monts & Vallées", "Sud"]
    if with_newline:
        names[3] = "deux\nlignes"
    df = gpd.GeoDataFrame({
        "cpts": names,
        "population": pd.array([1200, None, 30, 45000, 7], dtype="Int64"),
        "coverage_rate": [0.1234, np.nan, 1.0, 0.5, 0.25],
        "status_date": pd.to_datetime(["2020-07-09", None, "2021-01-01", "2019-03-02",
                                       "2024-12-31"]),
    }, geometry=[shapely.box(i, 45, i + 1, 46) if i != 2 else None for i in range(5)],
        crs=4326)
    df.attrs = {"population_year": 2026}
    return df


def _files(directory) -> dict[str, bytes]:
    out = {}
    for p in sorted(directory.iterdir()):
        if p.suffix == ".xlsx":  # compare the sheets, not the zip's own bytes
            with zipfile.ZipFile(p) as zf:
                out.update({f"{p.name}:{n}": zf.read(n) for n in zf.namelist()})
        else:
            out[p.name] = p.read_bytes()
    return out


@pytest.mark.parametrize("with_newline", [False, True])
def test_a_slice_of_a_converted_table_writes_the_bytes_of_its_rows(tmp_path, with_newline):
    df = _table(with_newline)
    pos = [4, 0, 2]
    whole, alone = tmp_path / "slice", tmp_path / "alone"
    whole.mkdir()
    alone.mkdir()
    meta = {"cog_year": 2026}
    a = write_downloads([("t", "Table", Table(df).take(pos))], whole, "t.xlsx", [("k", "v")],
                        meta)
    b = write_downloads([("t", "Table", df.iloc[pos].reset_index(drop=True))], alone,
                        "t.xlsx", [("k", "v")], meta)
    assert a == b == ["t.csv", "t.geojson", "t.xlsx", "t_excel.csv"]
    assert _files(whole) == _files(alone)
    assert (whole / "t.csv").read_text("utf-8").count("'=HYPERLINK(1)") == 0  # not in slice
    empty = tmp_path / "empty"
    empty.mkdir()
    write_downloads([("t", "Table", Table(df).take([]))], empty, None, [], meta)
    assert (empty / "t.csv").read_text("utf-8").count("\n") == 1  # the header only
    assert not (empty / "t.geojson").exists()
