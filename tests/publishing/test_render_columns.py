"""The downloads made column by column (Arrow, NumPy) are the bytes of the cell-by-cell
definitions they replace: CSV lines as pandas writes them, the workbook's cells, the GeoJSON
properties as ``json.dumps`` of the rows' records, the records themselves, formula-safe cells.

Each reference below is the previous implementation, value by value, kept here as the
definition; the tables hold every kind of column and the awkward texts (formulas, quotes,
separators, line breaks, spaces that XML must preserve, characters XML or JSON escape)."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from json.encoder import encode_basestring

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import shapely

from cpts_geo.io import excel
from cpts_geo.io.excel import SheetRows, readable
from cpts_geo.io.writers import (
    formula_safe,
    holds_any,
    iso_dates,
    jsonable,
    number_text,
    records,
    spreadsheet_safe,
)
from cpts_geo.publishing import render
from cpts_geo.publishing.render import _EXCEL_CSV, _PLAIN_CSV, Table, geojson_features

#: Every character Python's str.strip() takes for a space.
SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]

AWKWARD = [
    "Gier", "=HYPERLINK(1)", "+33", "-1", "@SUM", "\tx", "\rx", " lead", "trail ", "\xa0nbsp",
    "ideo\u3000", "\x1fend", "a\x01b\x0bc\ufffe\uffffd", "Monts & Vallées <x>", 'dit "le"',
    "L'Haÿ ; « x », y", "back\\slash", "ctl\x1fchar\x7f", "é\u2028\u2029", "emoji 🏥", "",
    "semi;colon", "comma,", "\u202fnarrow", "x\x00y", "a\tb",
] + [f"{c}space{c}" for c in SPACES]


def _frame(n: int, *, line_break: bool = False, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    texts = [AWKWARD[i % len(AWKWARD)] for i in range(n)]
    if line_break:
        texts[1] = "deux\nlignes"
    texts_na = [None if i % 5 == 2 else t for i, t in enumerate(texts)]
    floats = rng.normal(size=n) * 10.0 ** rng.integers(-8, 18, size=n)
    specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e16, 1e-5, 0.1, 100.0, 12.3]
    floats[: len(specials)] = specials[:n]
    dates = pd.to_datetime(rng.integers(10_000, 20_000, size=n), unit="D")
    dates = dates.where(np.arange(n) % 4 != 1)
    return pd.DataFrame({
        "cpts": pd.array(texts_na, dtype="str"),
        "nom": pd.array(texts, dtype="string[python]"),
        "kind": np.array(texts_na, dtype=object),
        "mixed": np.array([[1, 2.5, "=x", None, True, pd.Timestamp("2020-01-02"),
                            float("nan"), b"bytes"][i % 8] for i in range(n)], dtype=object),
        "odd_missing": np.array([[np.datetime64("NaT"), "a", Decimal("NaN"), pd.NA, pd.NaT,
                                  None][i % 6] for i in range(n)], dtype=object),
        "text_float32_nan": np.array([["a", np.float32("nan"), None, "b"][i % 4]
                                      for i in range(n)], dtype=object),
        "text_numpy_nat": np.array([["a", np.datetime64("NaT"), np.float64("nan")][i % 3]
                                    for i in range(n)], dtype=object),
        "population": pd.array([None if i % 3 == 0 else int(v) for i, v in
                                enumerate(rng.integers(-10**6, 10**6, size=n))],
                               dtype="Int64"),
        "n_communes": rng.integers(0, 1000, size=n),
        "small": rng.integers(-100, 100, size=n).astype(np.int8),
        "big": np.full(n, 2**63 + 5, dtype=np.uint64),
        "coverage_rate": floats,
        "area_km2": np.round(rng.random(n) * 500, 1),
        "single": rng.random(n).astype(np.float32),
        "claimed_share": pd.array([None if i % 4 == 0 else float(v) for i, v in
                                   enumerate(rng.random(n))], dtype="Float64"),
        "covered": rng.random(n) > 0.5,
        "contiguous": pd.array([None if i % 3 == 1 else bool(i % 2) for i in range(n)],
                               dtype="boolean"),
        "enclave": np.array([[True, False, None, 0, "x"][i % 5] for i in range(n)],
                            dtype=object),
        "status": pd.Categorical([[None, "signé", "=projet", "actif"][i % 4] for i in range(n)]),
        "size_class_basis": pd.Categorical([["a", None, "ç"][i % 3] for i in range(n)]),
        "version_basis": pd.Categorical([["a, b", 'dit "x"', "c;d"][i % 3] for i in range(n)]),
        "zone": pd.Categorical([[3, None, 1][i % 3] for i in range(n)]),
        "status_date": dates,
        "date": dates + pd.to_timedelta(np.arange(n) % 2, unit="h"),
        "claim_date": pd.to_datetime(["2024-03-01 12:30"] * n).tz_localize("Europe/Paris"),
        "metric": [["coverage_rate", "n_cpts", None][i % 3] for i in range(n)],
        "claimed": rng.random(n),
        "unknown column": texts,
    })


# -- the definitions: the previous implementations, value by value --------------------------

def _records_ref(df: pd.DataFrame) -> list[dict]:
    cols = [c for c in df.columns if c != "geometry"]
    values = [[jsonable(v) for v in df[c].to_numpy(dtype=object)] for c in cols]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)] \
        if cols else [{} for _ in range(len(df))]


def _safe_ref(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        values = series.to_numpy(dtype=object)
        hits = [i for i, v in enumerate(values)
                if isinstance(v, str) and re.match(r"^[=+\-@\t\r]", v)]
        if hits:
            values = values.copy()
            for i in hits:
                values[i] = formula_safe(values[i])
            out[col] = pd.Series(values, index=out.index, dtype=object)
    return out


def _sheet_ref(table: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    labels = {c.label: c.kind for c in excel.COLUMNS.values()}
    styles = [excel._STYLE_OF_FORMAT.get(excel._FORMATS.get(labels.get(str(name), "text"), ""),
                                         0) for name in table.columns]
    n, cells = len(table), []
    lengths = np.zeros((n, table.shape[1]), dtype=np.int32)
    for j in range(table.shape[1]):
        values = [excel._cell(v) for v in table.iloc[:, j].to_numpy(dtype=object)]
        lengths[:, j] = [0 if v is None else len(str(v)) for v in values]
        ref = excel._column_letter(j) + excel._ROW
        cells.append(["" if v is None else excel._cell_xml(ref, v, styles[j]) for v in values])
    rows = ["".join(row) for row in zip(*cells, strict=True)] if table.shape[1] else [""] * n
    return rows, lengths


def _features_ref(df: gpd.GeoDataFrame) -> list[str | None]:
    geoms = df.geometry
    if df.crs is not None and not df.crs.equals("EPSG:4326"):
        geoms = geoms.to_crs(4326)
    arr = geoms.to_numpy()
    present = ~shapely.is_missing(arr)
    texts = np.full(len(arr), None, dtype=object)
    if present.any():
        texts[present] = shapely.to_geojson(shapely.set_precision(
            arr[present], 1e-6, mode="pointwise"))
    props = pd.DataFrame(df.drop(columns="geometry"))
    for col in props.columns:
        if not pd.api.types.is_numeric_dtype(props[col]) \
                and not pd.api.types.is_bool_dtype(props[col]) \
                and not pd.api.types.is_datetime64_any_dtype(props[col]):
            props[col] = props[col].astype(object).where(props[col].notna(), None).map(
                lambda v: v if v is None else str(v))
    return [None if geom is None else
            '{"type": "Feature", "properties": '
            + json.dumps(row, ensure_ascii=False, allow_nan=False, default=str)
            + ', "geometry": ' + geom + "}"
            for row, geom in zip(_records_ref(props), texts, strict=True)]


def _readable_bool_ref(values: pd.Series) -> pd.Series:
    return values.map(lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v))
                      else ("oui" if bool(v) else "non")).astype(object)


# -- the tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 7, 400])
def test_records_are_jsonable_value_by_value(n):
    df = _frame(n)
    assert records(df) == _records_ref(df)
    gdf = gpd.GeoDataFrame(df.iloc[:, :6], geometry=[shapely.Point(i, 45) for i in range(n)],
                           crs=4326)
    gdf.attrs = {"source": "x"}
    assert records(gdf) == _records_ref(gdf)
    assert records(df.iloc[:, :0]) == [{}] * n


@pytest.mark.parametrize("n", [0, 3, 400])
def test_formula_safe_cells_as_cell_by_cell(n):
    df = _frame(n)
    got, want = spreadsheet_safe(df), _safe_ref(df)
    pd.testing.assert_frame_equal(got, want)
    shown = readable(df, "all")
    pd.testing.assert_frame_equal(spreadsheet_safe(shown), _safe_ref(shown))


def test_yes_no_columns_read_oui_non_as_cell_by_cell():
    df = _frame(50)
    for col in ("covered", "contiguous", "enclave"):
        got = excel._convert(df[col], "bool", None)
        pd.testing.assert_series_equal(got, _readable_bool_ref(df[col]))


@pytest.mark.parametrize("n", [0, 1, 9, 400])
@pytest.mark.parametrize("shown", [False, True])
def test_sheet_cells_as_cell_by_cell(n, shown):
    df = _frame(n)
    table = spreadsheet_safe(readable(df, "all") if shown else df)
    rows = SheetRows.of(table, safe=True)
    want_rows, want_lengths = _sheet_ref(table)
    assert rows.rows == want_rows
    np.testing.assert_array_equal(rows.lengths, want_lengths)
    assert rows.header == [str(c) for c in table.columns]
    part = rows.take(np.arange(n)[::-3])
    assert part.xml() == SheetRows(rows.header, rows.styles,
                                   [want_rows[i] for i in np.arange(n)[::-3]],
                                   want_lengths[np.arange(n)[::-3]]).xml()
    empty = SheetRows.of(table.iloc[:, :0], safe=True)
    assert empty.rows == [""] * n and empty.lengths.shape == (n, 0)


@pytest.mark.parametrize("n", [0, 1, 9, 400, 1200])
@pytest.mark.parametrize("line_break", [False, True])
def test_csv_lines_are_pandas_lines(n, line_break, monkeypatch):
    if n < 1000:  # small tables are written by pandas at once: column by column here too
        monkeypatch.setattr(render, "_COLUMNWISE_CSV_ROWS", 0)
    df = _frame(n, line_break=line_break and n > 1)
    for frame in (spreadsheet_safe(df), spreadsheet_safe(readable(df, "all"))):
        for options, end in ((_PLAIN_CSV, "\n"), (_EXCEL_CSV, "\r\n")):
            got = render._csv_lines(frame, options, end)
            assert got == render._csv_lines_of(frame, options, end)
            if line_break and n > 1 and end == "\n":
                assert got[1] is None
        one = frame.iloc[:, :1]  # a row of one empty field is quoted: pandas writes it
        assert render._csv_lines(one, _PLAIN_CSV, "\n") == \
            render._csv_lines_of(one, _PLAIN_CSV, "\n")


@pytest.mark.parametrize("crs", [4326, 2154])
@pytest.mark.parametrize("n", [0, 1, 9, 200])
def test_geojson_features_are_json_dumps_of_the_records(n, crs):
    df = _frame(n)
    geoms = [None if i % 7 == 3 else shapely.box(4 + i * 1e-3, 45.123456789, 4.5 + i * 1e-3, 46)
             for i in range(n)]
    gdf = gpd.GeoDataFrame(df, geometry=geoms, crs=4326).to_crs(crs)
    assert geojson_features(gdf) == _features_ref(gdf)
    # a column named twice keeps its first place and its last values, as in a dict
    twice = gpd.GeoDataFrame(df.iloc[:, [0, 5, 9]].set_axis(["a", "b", "a"], axis=1),
                             geometry=geoms, crs=4326)
    once = gpd.GeoDataFrame({"a": df.iloc[:, 9], "b": df.iloc[:, 5]}, geometry=geoms, crs=4326)
    assert geojson_features(twice) == _features_ref(once)
    no_props = gpd.GeoDataFrame(geometry=geoms, crs=4326)
    assert geojson_features(no_props) == _features_ref(no_props)


def test_national_like_table_converts_to_the_bytes_of_its_pages(tmp_path):
    df = gpd.GeoDataFrame(_frame(1500),
                          geometry=[shapely.Point(i * 1e-3, 45) for i in range(1500)], crs=4326)
    table = Table(df)
    rows, lengths = _sheet_ref(spreadsheet_safe(readable(df, "all")))
    assert table.sheet_rows is not None and table.sheet_rows.rows == rows
    np.testing.assert_array_equal(table.sheet_rows.lengths, lengths)
    assert table.features == _features_ref(df)
    assert (table.csv_header, table.csv_rows) == render._csv_lines_of(
        spreadsheet_safe(pd.DataFrame(df.drop(columns="geometry"))), _PLAIN_CSV, "\n")
    assert (table.excel_header, table.excel_rows) == render._csv_lines_of(
        spreadsheet_safe(readable(df, "all")), _EXCEL_CSV, "\r\n")


def test_numbers_are_written_as_python_writes_them():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2**64, size=200_000, dtype=np.uint64).view(np.float64)
    values = np.concatenate([bits, [0.0, -0.0, 1e16, 1e15, 1e-4, 1e-5, 5e-324, 0.1, 2.5,
                                    np.inf, -np.inf, np.nan], np.round(rng.random(1000), 1)])
    assert number_text(values).to_pylist() == [repr(v) for v in values.tolist()]
    ints = np.array([0, -1, 2**63 - 1, -(2**63)], dtype=np.int64)
    assert number_text(ints).to_pylist() == [str(v) for v in ints.tolist()]
    assert number_text(np.array([2**64 - 1], dtype=np.uint64)).to_pylist() == [str(2**64 - 1)]
    dates = pd.Series(pd.to_datetime(["2020-07-09", None, "1900-01-01"]))
    assert iso_dates(dates) == [jsonable(v) for v in dates]


def test_arrow_patterns_match_the_characters_python_looks_for():
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    arr = pa.array(chars, type=pa.large_string())
    not_xml = pc.match_substring_regex(arr, excel._NOT_XML_RE2).to_pylist()
    assert not_xml == [bool(excel._NOT_XML.search(c)) for c in chars]
    assert set(excel._NOT_XML_CHARS) == {c for c in chars if excel._NOT_XML.search(c)}
    assert set(render._JSON_ESCAPED) == {c for c in chars if encode_basestring(c) != f'"{c}"'}
    for sep, end in ((",", "\n"), (";", "\r\n")):  # the csv module quotes only these
        special = {sep, '"', "\r", "\n", *end}
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=sep, lineterminator=end)
        quoted = set()
        for c in chars[:0x3100]:
            buf.seek(0)
            buf.truncate()
            writer.writerow([f"a{c}b", ""])
            if buf.getvalue() != f"a{c}b{sep}{end}":
                quoted.add(c)
        assert quoted <= special


def test_holds_any_finds_a_character_wherever_it_is():
    rng = np.random.default_rng(3)
    alphabet = ["a", "é", ";", "\n", "\ufffe", "🏥", '"', "\x01"]
    for _ in range(200):
        texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 4))) for _ in range(6)]
        texts = [None if rng.random() < 0.2 else t for t in texts]
        arr = pa.array(texts, type=pa.large_string())
        start = int(rng.integers(0, 3))
        part = arr.slice(start, int(rng.integers(0, 6 - start + 1)))
        for chars in (";", '"\n', "\ufffe", "\x01é", "z"):
            want = any(t is not None and any(c in t for c in chars) for t in part.to_pylist())
            assert holds_any(part, chars) == want
