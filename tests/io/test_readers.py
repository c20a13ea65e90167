"""Reading CPTS territories into the membership table, on real communes of the bundle."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely
from helpers import workbook

from cpts_geo import load_communes
from cpts_geo.errors import CptsGeoWarning, InputError, TerritoryError
from cpts_geo.io import outline_fractions, read_territories
from cpts_geo.membership import STATUSES, normalize_status

ROOT = Path(__file__).resolve().parents[2]

GIER_NAMES = (
    "Le Bessat, Cellieu, Chagnon, Châteauneuf, Dargoire, Doizieux, Farnay, La Grand-Croix, "
    "L’Horme, Lorette, Pavezin, Rive-de-Gier, Saint-Chamond, Sainte-Croix-en-Jarez, Genilac, "
    "Saint-Joseph, Saint-Martin-la-Plaine, Saint-Paul-en-Jarez, Saint-Romain-en-Jarez, Tartaras, "
    "La Terrasse-sur-Dorlay, Valfleury, La Valla-en-Gier, Longes, Trèves, Marcenod, "
    "Saint-Christo-en-Jarez"
)
GIER_CODES = [
    "42017", "42032", "42036", "42053", "42083", "42085", "42093", "42103", "42110", "42123",
    "42167", "42186", "42207", "42210", "42225", "42242", "42259", "42271", "42283", "42307",
    "42308", "42320", "42322", "69119", "69252", "42133", "42208",
]
COLUMNS = ["cpts", "cpts_id", "insee", "nom", "share", "status", "status_date", "source", "row"]
SMH, POISAT, EYBENS = "38421", "38309", "38158"


def write(tmp_path: Path, text: str, name: str = "cpts.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def problems_of(excinfo: pytest.ExceptionInfo[TerritoryError]) -> list[tuple]:
    return [(p.row, p.column, p.value) for p in excinfo.value.problems]


@pytest.fixture
def no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CptsGeoWarning)
        yield


# ---------------------------------------------------------------------------------------------
# Statuses
# ---------------------------------------------------------------------------------------------
def test_statuses_follow_the_life_cycle():
    assert STATUSES == (
        "proposition", "pré-projet", "lettre d'intention validée", "projet de santé validé",
        "ACI signé",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ACI signé", "ACI signé"), ("aci", "ACI signé"), ("ACI signe", "ACI signé"),
        ("signé", "ACI signé"), ("4 - ACI signé", "ACI signé"),
        ("projet de sante", "projet de santé validé"),
        ("Projet de santé validé", "projet de santé validé"),
        ("lettre d'intention", "lettre d'intention validée"),
        ("Lettre d’intention validée", "lettre d'intention validée"),
        ("LI validée", "lettre d'intention validée"),
        ("pre-projet", "pré-projet"), ("préprojet", "pré-projet"), ("Pré projet", "pré-projet"),
    ],
)
def test_normalize_status_spellings(text, expected):
    assert normalize_status(text) == expected


@pytest.mark.parametrize("empty", [None, "", "  ", float("nan"), pd.NA])
def test_normalize_status_empty_is_none(empty):
    assert normalize_status(empty) is None


@pytest.mark.parametrize("bad", ["signature en cours", "validé", 3])
def test_normalize_status_unknown(bad):
    with pytest.raises(InputError,
                       match="is not a CPTS status: expected one of 'proposition', 'pré-projet'"):
        normalize_status(bad)


# ---------------------------------------------------------------------------------------------
# Long form
# ---------------------------------------------------------------------------------------------
def test_long_form_csv_with_codes(tmp_path, no_warning):
    path = write(tmp_path, (
        "CPTS,Code INSEE,Statut,Date de signature,Source,Commentaire\n"
        "Vallée du Gier,42207,ACI signé,2020-07-09,communiqué CPAM,x\n"
        "Vallée du Gier,42110,,,,\n"
        "Sud-Est Grenoblois,38421,projet de santé,09/07/2021,,\n"
    ))
    df = read_territories(path)
    assert list(df.columns) == COLUMNS
    assert df["cpts"].tolist() == ["Vallée du Gier", "Vallée du Gier", "Sud-Est Grenoblois"]
    assert df["cpts_id"].tolist() == ["vallee-du-gier", "vallee-du-gier", "sud-est-grenoblois"]
    assert df["insee"].tolist() == ["42207", "42110", "38421"]
    assert df["nom"].tolist() == ["Saint-Chamond", "L'Horme", "Saint-Martin-d'Hères"]
    assert df["share"].tolist() == [1.0, 1.0, 1.0]
    assert df["row"].tolist() == [2, 3, 4]
    # a status given on one row of a CPTS applies to all its rows
    assert df["status"].tolist() == ["ACI signé", "ACI signé", "projet de santé validé"]
    assert isinstance(df["status"].dtype, pd.CategoricalDtype)
    assert df["status"].cat.ordered and tuple(df["status"].cat.categories) == STATUSES
    assert (df["status"] > "projet de santé validé").tolist() == [True, True, False]
    assert str(df["status_date"].dtype).startswith("datetime64")
    assert df["status_date"].tolist() == [
        pd.Timestamp("2020-07-09"), pd.Timestamp("2020-07-09"), pd.Timestamp("2021-07-09")
    ]
    assert df["source"].iloc[0] == "communiqué CPAM" and pd.isna(df["source"].iloc[1])
    assert df.attrs["source"] == "cpts.csv"
    assert df.attrs["n_cpts"] == 2
    assert df.attrs["form"] == "long"
    assert df.attrs["ignored_columns"] == ["Commentaire"]
    assert "split_communes" not in df.attrs


def test_long_form_names_with_departement(tmp_path, no_warning):
    path = write(tmp_path, (
        "nom_cpts;libellé commune;département;id cpts\n"
        "CPTS du Gier;L’Horme;42;G1\n"
        "CPTS du Gier;St-Chamond;42;G1\n"
        "CPTS du Gier;Saint-Joseph;42;G1\n"
        "CPTS du Gier;Longes;69;G1\n"
    ))
    df = read_territories(path)
    assert df["insee"].tolist() == ["42110", "42207", "42242", "69119"]
    assert df["nom"].tolist() == ["L'Horme", "Saint-Chamond", "Saint-Joseph", "Longes"]
    assert set(df["cpts_id"]) == {"G1"}


def test_commune_column_holds_codes_or_names(no_warning):
    table = pd.DataFrame({
        "cpts": ["A", "A", "A"],
        "commune": ["42218", "Lorette", 42110],
        "dep": ["42", "42", "42"],
    })
    assert read_territories(table)["insee"].tolist() == ["42218", "42123", "42110"]


def test_dataframe_input_is_not_modified(no_warning):
    table = pd.DataFrame({"CPTS": [" Vallée du Gier "], "INSEE": [42207.0], "part": ["50 %"]})
    before = table.copy()
    df = read_territories(table)
    pd.testing.assert_frame_equal(table, before)
    assert df["cpts"].tolist() == ["Vallée du Gier"]
    assert df["insee"].tolist() == ["42207"]
    assert df["share"].tolist() == [0.5]
    assert df["row"].tolist() == [2]
    assert df.attrs["source"] == "DataFrame"


def test_shares_fractions_and_percentages(no_warning):
    table = pd.DataFrame({
        "cpts": ["A", "A", "A", "B", "B"],
        "insee": ["42218", "42207", "42110", "42218", "42123"],
        "quote-part": ["50 %", "0,25", 0.75, "0.5", None],
    })
    df = read_territories(table)
    assert df["share"].tolist() == [0.5, 0.25, 0.75, 0.5, 1.0]


@pytest.mark.parametrize("date", ["2020-07-09", "09/07/2020", "9 juillet 2020", "9/7/2020",
                                  "2020-07-09 00:00:00", pd.Timestamp("2020-07-09")])
def test_dates(date, no_warning):
    table = pd.DataFrame({"cpts": ["A"], "insee": ["42218"], "date": [date]})
    assert read_territories(table)["status_date"].iloc[0] == pd.Timestamp("2020-07-09")


def test_municipal_arrondissements_are_kept(no_warning):
    table = pd.DataFrame({
        "cpts": ["Lyon 3", "Lyon 3", "Lyon"],
        "commune": ["69383", "Lyon 7e", "69123"],
    })
    df = read_territories(table)
    assert df["insee"].tolist() == ["69383", "69387", "69123"]
    assert df["nom"].tolist() == ["Lyon 3e Arrondissement", "Lyon 7e Arrondissement", "Lyon"]


def test_seed_file_of_the_repository(no_warning):
    df = read_territories(ROOT / "data" / "territories" / "cpts_seeds.csv")
    assert df.attrs["n_cpts"] == 3
    gier = df[df["cpts_id"] == "vallee-du-gier"]
    assert gier["insee"].tolist() == GIER_CODES


def test_seed_file_dates_each_cpts_with_its_sources():
    seeds = ROOT / "data" / "territories" / "cpts_seeds.csv"
    raw = pd.read_csv(seeds, dtype=str, keep_default_na=False)
    dates = raw.groupby("cpts")["status_date"].unique().map(list).to_dict()
    assert dates == {"Vallée du Gier": ["2023-12-07"], "Sud-Est Grenoblois": ["2020-07-09"],
                     "Vénissieux": ["2019-09-25"]}
    notes = raw.groupby("cpts")["note"].first()
    # the inferred year states its reasoning and both ARS releases it rests on
    assert "inference" in notes["Vallée du Gier"]
    assert "8 novembre 2023" in notes["Vallée du Gier"]
    assert "13 décembre 2023" in notes["Vallée du Gier"]
    assert notes["Vallée du Gier"].count("https://www.auvergne-rhone-alpes.ars.sante.fr/") == 2
    assert "2020-07-10-cp-isere-creation-cpts-sud-est-grenoblois" in notes["Sud-Est Grenoblois"]
    assert "Gières and Venon" in notes["Sud-Est Grenoblois"]
    assert "24 septembre 2019" in notes["Vénissieux"]  # the disagreement is kept


# ---------------------------------------------------------------------------------------------
# Wide form
# ---------------------------------------------------------------------------------------------
def test_wide_form_vallee_du_gier(tmp_path, no_warning):
    path = write(tmp_path, (
        "CPTS,communes,départements,statut\n"
        f'Vallée du Gier,"{GIER_NAMES}","42,69",ACI signé\n'
    ))
    df = read_territories(path)
    assert df["insee"].tolist() == GIER_CODES
    assert len(df) == 27
    assert (df["insee"].str[:2] == "42").sum() == 25
    assert df.set_index("nom").loc[["Longes", "Trèves"], "insee"].tolist() == ["69119", "69252"]
    assert set(df["row"]) == {2}
    assert set(df["cpts_id"]) == {"vallee-du-gier"}
    assert set(df["status"]) == {"ACI signé"}
    assert df.attrs["form"] == "wide" and df.attrs["n_cpts"] == 1


def test_wide_form_newlines_semicolons_and_final_et(no_warning):
    table = pd.DataFrame({
        "territoire": ["Gier", "Ondaine"],
        "liste des communes": [
            "- Saint-Chamond\n- Lorette\n- L'Horme et Rive-de-Gier.",
            "Firminy; Unieux ; Fraisses;",
        ],
        "dep": ["42", "42"],
    })
    df = read_territories(table)
    assert df["insee"].tolist() == ["42207", "42123", "42110", "42186", "42095", "42316",
                                    "42099"]
    assert df["row"].tolist() == [2, 2, 2, 2, 3, 3, 3]


# ---------------------------------------------------------------------------------------------
# CSV variants and Excel
# ---------------------------------------------------------------------------------------------
CSV_TEXT = (
    "CPTS;Code commune;Nom commune;Statut;Date\r\n"
    "Vallée du Gier;42207;Saint-Chamond;ACI signé;09/07/2020\r\n"
    "Vallée du Gier;42110;L'Horme;ACI signé;09/07/2020\r\n"
    "Forez-Est;42005;Andrézieux-Bouthéon;lettre d'intention validée;\r\n"
)


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("cp1252", ";"), ("utf-8-sig", ";"), ("utf-8", ";"), ("utf-8-sig", ","), ("cp1252", "\t")],
)
def test_csv_encodings_and_delimiters(tmp_path, encoding, delimiter, no_warning):
    text = CSV_TEXT.replace(";", delimiter)
    path = write(tmp_path, text, "export.csv", encoding)
    df = read_territories(path)
    assert df["cpts"].tolist() == ["Vallée du Gier", "Vallée du Gier", "Forez-Est"]
    assert df["insee"].tolist() == ["42207", "42110", "42005"]
    assert df["status"].tolist() == ["ACI signé", "ACI signé", "lettre d'intention validée"]


def test_xlsx_with_title_rows_merged_cells_and_datetimes(tmp_path, no_warning):
    import datetime as dt

    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Notes"
    ws["A1"] = "nothing here"
    ws2 = book.create_sheet("CPTS Loire")
    ws2.append(["Liste des CPTS de la Loire (ARS, 2024)"])
    ws2.append([])
    ws2.append(["Nom CPTS", "Code INSEE", "Étape", "Date statut", "Part"])
    ws2.append(["Vallée du Gier", 42207, "ACI signé", dt.datetime(2020, 7, 9), None])
    ws2.append([None, "1001", None, None, 0.5])
    ws2.append([None, 42110.0, None, None, None])
    ws2.merge_cells("A4:A6")
    path = tmp_path / "cpts.xlsx"
    book.save(path)
    df = read_territories(path, sheet="CPTS Loire")
    assert df["insee"].tolist() == ["42207", "01001", "42110"]
    assert df["cpts"].tolist() == ["Vallée du Gier"] * 3
    assert df["row"].tolist() == [4, 5, 6]
    assert df["share"].tolist() == [1.0, 0.5, 1.0]
    assert (df["status_date"] == pd.Timestamp("2020-07-09")).all()
    assert df.attrs["source"] == "cpts.xlsx" and df.attrs["sheet"] == "CPTS Loire"
    assert read_territories(path, sheet=1)["insee"].tolist() == df["insee"].tolist()
    assert read_territories(path, sheet="1")["insee"].tolist() == df["insee"].tolist()
    with pytest.raises(InputError, match=r"cpts.xlsx: no sheet named 'Loire'.*'CPTS Loire'"):
        read_territories(path, sheet="Loire")
    with pytest.raises(InputError, match=r"cpts\.xlsx \[sheet 'Notes'\]: missing column.*; the "
                       r"workbook's sheets are 'Notes' \(read\), 'CPTS Loire': choose one with "
                       r"sheet='name' \(command line: --sheet NAME\)"):
        read_territories(path)  # the active sheet has no CPTS table: the error names the sheets


def test_xlsx_problems_give_the_sheet_row(tmp_path):
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["cpts", "insee"])
    ws.append(["A", "42218"])
    ws.append(["A", "42999"])
    path = tmp_path / "t.xlsx"
    book.save(path)
    with pytest.raises(TerritoryError, match=r"t.xlsx, row 3, column 'insee'.*42999") as exc:
        read_territories(path)
    assert problems_of(exc) == [(3, "insee", "42999")]


# ---------------------------------------------------------------------------------------------
# Codes and names: problems and warnings
# ---------------------------------------------------------------------------------------------
def test_unknown_code(tmp_path):
    path = write(tmp_path, "cpts,insee\nA,42218\nA,42999\n")
    with pytest.raises(TerritoryError, match="row 3") as exc:
        read_territories(path)
    assert "unknown INSEE code 42999" in str(exc.value)
    assert "cpts.csv" in str(exc.value)
    assert problems_of(exc) == [(3, "insee", "42999")]


def test_obsolete_code_of_a_commune_deleguee_warns_and_resolves(tmp_path):
    path = write(tmp_path, "cpts,insee\nA,42218\nA,42004\n")
    with pytest.warns(CptsGeoWarning, match=r"cpts.csv: 1 code.*row 3: 42004 \(Amions, commune "
                      r"déléguée\) -> 42268"):
        df = read_territories(path)
    assert df["insee"].tolist() == ["42218", "42268"]
    assert df["nom"].iloc[1] == "Vézelin-sur-Loire"


def test_spreadsheet_mangled_codes_are_silent(no_warning):
    table = pd.DataFrame({"cpts": ["A"] * 4, "insee": [1001, "2a004", " 42 218 ", 42110.0]})
    assert read_territories(table)["insee"].tolist() == ["01001", "2A004", "42218", "42110"]
    table = pd.DataFrame({"cpts": ["A"], "insee": ["1001.0"]})
    assert read_territories(table)["insee"].tolist() == ["01001"]


def test_communes_restrict_name_matching(loire, no_warning):
    table = pd.DataFrame({"cpts": ["A"], "commune": ["Saint-Joseph"]})
    assert read_territories(table, communes=loire)["insee"].tolist() == ["42242"]


def test_ambiguous_name_without_departement():
    table = pd.DataFrame({"cpts": ["A", "A"], "commune": ["Saint-Chamond", "Saint-Joseph"]})
    with pytest.raises(TerritoryError, match="row 3") as exc:
        read_territories(table)
    (problem,) = exc.value.problems
    assert problem.value == "Saint-Joseph"
    assert "matches 4 communes" in problem.message and "42242" in problem.message
    assert "50498" in problem.message


def test_unknown_name_lists_closest_candidates():
    table = pd.DataFrame({"cpts": ["A"], "nom commune": ["Saint-Chamon"], "dep": [42]})
    with pytest.raises(TerritoryError, match=r"row 2, column 'nom commune'") as exc:
        read_territories(table)
    assert "'Saint-Chamon' is not a commune name" in str(exc.value)
    assert "closest: Saint-Chamond (42207, 42)" in str(exc.value)


def test_fuzzy_accepts_a_close_name_with_a_warning():
    table = pd.DataFrame({"cpts": ["A"], "commune": ["Saint-Chamon"], "dep": [42]})
    with pytest.warns(CptsGeoWarning, match="row 2: 'Saint-Chamon' matched approximately"):
        df = read_territories(table, fuzzy=True)
    assert df["insee"].tolist() == ["42207"]


def test_former_name_resolves_with_a_warning():
    table = pd.DataFrame({"cpts": ["A"], "commune": ["Amions"], "dep": [42]})
    with pytest.warns(CptsGeoWarning, match="row 2: 'Amions' is a former name"):
        assert read_territories(table)["insee"].tolist() == ["42268"]


def test_code_and_name_that_disagree_are_a_problem_unless_codes_are_trusted():
    table = pd.DataFrame({"cpts": ["A"], "insee": ["42218"], "nom commune": ["Saint-Chamond"]})
    with pytest.raises(TerritoryError, match=r"row 2, column 'insee': code 42218 is "
                       r"Saint-Étienne \(42\), but the row also says 'Saint-Chamond' \(42207\): "
                       r"correct the code or the name \(to use the codes whatever the names say: "
                       r"trust_codes=True, --trust-codes\)") as exc:
        read_territories(table)
    assert problems_of(exc) == [(2, "insee", "42218")]
    with pytest.warns(CptsGeoWarning, match="row 2: code 42218 is Saint-Étienne, but the row "
                      r"also says 'Saint-Chamond' \(42207\)"):
        assert read_territories(table, trust_codes=True)["insee"].tolist() == ["42218"]


def test_a_postal_code_typed_as_an_insee_code_is_caught():
    # 38400 is the INSEE code of Saint-Jean-de-Moirans and the postal code of Saint-Martin-d'Hères
    table = pd.DataFrame({"cpts": ["SEG"], "insee": ["38400"], "commune": ["Saint-Martin-d'Hères"]})
    with pytest.raises(TerritoryError, match=r"'38400' is the INSEE code of Saint-Jean-de-Moirans "
                       r"\(38\), but the row names \"Saint-Martin-d'Hères\" \(38421\), whose "
                       r"postal code is 38400: write the INSEE code 38421"):
        read_territories(table)
    # a postal code that is no INSEE code says what it is
    table = pd.DataFrame({"cpts": ["SEG"], "insee": ["38000"]})
    with pytest.raises(TerritoryError, match=r"unknown INSEE code 38000.*it is the postal code of "
                       r"Grenoble \(38185\)"):
        read_territories(table)


def test_a_column_of_postal_codes_is_resolved_with_the_names(no_warning):
    table = pd.DataFrame({"cpts": ["Gier"] * 3, "code postal": ["42800", "42800", "42400"],
                          "commune": ["Saint-Joseph", "Châteauneuf", "Saint-Chamond"]})
    assert read_territories(table)["insee"].tolist() == ["42242", "42053", "42207"]
    table = pd.DataFrame({"cpts": ["Gier"], "cp": ["42400"], "commune": ["Lorette"]})
    with pytest.raises(TerritoryError, match=r"postal code 42400 does not serve 'Lorette': "
                       r"'Lorette' is Lorette \(42123\), whose postal code\(s\) are 42420"):
        read_territories(table)
    table = pd.DataFrame({"cpts": ["Gier"], "code postal": ["42800"]})
    with pytest.raises(InputError, match="a postal code does not identify a commune"):
        read_territories(table)


def test_a_misspelt_name_beside_its_code_is_a_warning():
    table = pd.DataFrame({"cpts": ["A"], "insee": ["42192"], "commune": ["Rozie-Côtes-d’Aurec"]})
    with pytest.warns(CptsGeoWarning, match=r"code and its name spelt differently.*row 2: code "
                      r"42192 is Rozier-Côtes-d'Aurec, spelt 'Rozie-Côtes-d’Aurec'"):
        assert read_territories(table)["insee"].tolist() == ["42192"]


def test_commune_outside_the_rows_departement():
    table = pd.DataFrame({"cpts": ["A"], "insee": ["42218"], "departement": ["69"]})
    with pytest.raises(TerritoryError, match="row 2") as exc:
        read_territories(table)
    assert "is in département 42, not in 69" in str(exc.value)


def test_bad_departement():
    table = pd.DataFrame({"cpts": ["A"], "commune": ["Lorette"], "departement": ["Loir"]})
    with pytest.raises(TerritoryError, match=r"row 2, column 'departement'.*'Loir'"):
        read_territories(table)


# ---------------------------------------------------------------------------------------------
# Row problems: all collected, one error
# ---------------------------------------------------------------------------------------------
def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    path = write(tmp_path, (
        "cpts,insee,part,statut,date\n"
        "A,42218,,,\n"                    # 2 ok
        "A,42218,,,\n"                    # 3 duplicate of row 2
        "A,42207,1.5,,\n"                 # 4 share too large
        "A,42110,-0.2,,\n"                # 5 negative share
        "A,42123,,signature en cours,\n"  # 6 unknown status
        "A,42186,,,31/02/2020\n"          # 7 no such day
        "A,42225,,,demain\n"              # 8 not a date
        ",42095,,,\n"                     # 9 no CPTS name
        "A,,,,\n"                         # 10 no commune
        "A,42316,50,,\n"                  # 11 a percentage without its sign
    ))
    with pytest.raises(TerritoryError, match=r"^9 problems in cpts.csv: correct these cells in the "
                       r"file and read it again\ncpts.csv, row 3") as exc:
        read_territories(path)
    assert problems_of(exc) == [  # sorted by row
        (3, "insee", "42218"),
        (4, "part", "1.5"),
        (5, "part", "-0.2"),
        (6, "statut", "signature en cours"),
        (7, "date", "31/02/2020"),
        (8, "date", "demain"),
        (9, "cpts", ""),
        (10, "insee", ""),
        (11, "part", "50"),
    ]
    by_row = {p.row: p for p in exc.value.problems}
    assert set(by_row) == {3, 4, 5, 6, 7, 8, 9, 10, 11}
    assert "duplicate: commune 42218 (Saint-Étienne) is listed in rows 2 and 3" in (
        by_row[3].message)
    assert "share '1.5' is out of range" in by_row[4].message
    assert "share '-0.2' is out of range" in by_row[5].message
    assert "'signature en cours' is not a CPTS status" in by_row[6].message
    assert "no such day" in by_row[7].message
    assert "'demain' is not a date" in by_row[8].message
    assert by_row[9].message == "missing CPTS name"
    assert by_row[10].message == "empty commune"
    assert "write a percentage with its sign ('50 %')" in by_row[11].message


def test_conflicting_statuses_within_a_cpts():
    table = pd.DataFrame({
        "cpts": ["A", "A", "A"], "insee": ["42218", "42207", "42110"],
        "statut": ["ACI signé", "ACI signé", "pré-projet"],
    })
    with pytest.raises(TerritoryError, match="row 4, column 'statut'") as exc:
        read_territories(table)
    assert "CPTS 'A' has conflicting statuses: ACI signé (rows 2, 3); pré-projet (row 4)" in (
        str(exc.value))


def test_same_cpts_id_for_two_names():
    table = pd.DataFrame({
        "cpts": ["Gier", "Ondaine"], "cpts_id": ["C1", "C1"], "insee": ["42207", "42095"],
    })
    with pytest.raises(TerritoryError, match="row 3, column 'cpts_id'") as exc:
        read_territories(table)
    assert "cpts_id 'C1' is used by several CPTS: 'Gier' (row 2); 'Ondaine' (row 3)" in (
        str(exc.value))


def test_duplicate_within_one_wide_cell():
    table = pd.DataFrame({"cpts": ["A"], "communes": ["42207, Saint-Chamond"], "dep": [42]})
    with pytest.raises(TerritoryError, match="listed twice in row 2"):
        read_territories(table)


def test_shares_of_a_commune_adding_up_to_more_than_one_are_an_overlap_not_an_error():
    table = pd.DataFrame({"cpts": ["A", "B"], "insee": ["42218", "42218"], "part": [0.6, 0.6]})
    with pytest.warns(CptsGeoWarning, match=r"shares adding up to more than 1.*42218 "
                                             r"Saint-Étienne: 1.2 \(rows 2, 3\)"):
        t = read_territories(table)
    assert t["share"].tolist() == [0.6, 0.6]
    # an explicit share next to a blank one (1.0) is the same situation
    table = pd.DataFrame({"cpts": ["A", "B"], "insee": ["42218", "42218"], "part": [0.5, None]})
    with pytest.warns(CptsGeoWarning, match=r"42218 Saint-Étienne: 1.5"):
        read_territories(table)


def test_communes_without_boundary_under_outlines_are_reported(tmp_path):
    cantal = load_communes("15")
    outline = cantal[cantal["insee"] == "15141"].dissolve()[["geometry"]].assign(cpts="Pinatelle")
    path = tmp_path / "pinatelle.geojson"
    outline.to_file(path, driver="GeoJSON")
    with pytest.warns(CptsGeoWarning, match=r"no boundary in the reference data.*15031 Celles"):
        t = read_territories(path)
    assert t["insee"].tolist() == ["15141"]


def test_cpts_name_spelt_two_ways_warns():
    table = pd.DataFrame({"cpts": ["Vallée du Gier", "Vallee du gier"],
                          "insee": ["42207", "42110"]})
    with pytest.warns(CptsGeoWarning, match="written in several ways"):
        df = read_territories(table)
    assert df["cpts"].tolist() == ["Vallée du Gier"] * 2


# ---------------------------------------------------------------------------------------------
# Malformed files
# ---------------------------------------------------------------------------------------------
def test_missing_commune_column(tmp_path):
    path = write(tmp_path, "cpts,statut\nA,aci\n")
    with pytest.raises(InputError, match=r"cpts.csv: missing column\(s\) 'commune'") as exc:
        read_territories(path)
    message = str(exc.value)
    assert "columns found: 'cpts', 'statut'" in message
    assert "'code insee'" in message and "'nom commune'" in message


def test_missing_cpts_column(tmp_path):
    path = write(tmp_path, "insee\n42218\n")
    with pytest.raises(InputError, match=r"missing column\(s\) 'cpts'.*'nom cpts'"):
        read_territories(path)


def test_malformed_csv_unbalanced_quote(tmp_path):
    path = write(tmp_path, 'cpts,insee\n"A,42218\nB,42207\n')
    with pytest.raises(InputError, match=r"cpts\.csv: malformed CSV near line 3"):
        read_territories(path)


def test_unquoted_list_in_a_comma_csv(tmp_path):
    path = write(tmp_path, "cpts,communes,dep\nGier,Saint-Chamond, Lorette,42\n")
    with pytest.raises(TerritoryError, match="row 2: the row has 4 cells but the header only 3"):
        read_territories(path)


@pytest.mark.parametrize("content", [b"", b"  \r\n\r\n", "\ufeff".encode()])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"empty\.csv: the file is empty"):
        read_territories(path)


def test_header_without_rows(tmp_path):
    path = write(tmp_path, "cpts,insee\n\n")
    with pytest.raises(InputError, match=r"cpts.csv: the file has a header \(row 1\) but no data"):
        read_territories(path)


def test_malformed_excel(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"this is not a workbook")
    with pytest.raises(InputError, match=r"broken\.xlsx: cannot be read as an Excel workbook"):
        read_territories(path)


def test_malformed_geojson(tmp_path):
    path = write(tmp_path, '{"type": "FeatureCollection", "features": [', "bad.geojson")
    with pytest.raises(InputError,
                       match=r"bad\.geojson: not valid JSON: Expecting value at line 1"):
        read_territories(path)


def test_unknown_extension_and_old_excel(tmp_path):
    with pytest.raises(InputError, match=r"cpts.pdf: unknown file type '.pdf'; expected one of"):
        read_territories(tmp_path / "cpts.pdf")
    with pytest.raises(InputError, match=r"unknown file type '.xls' \(save the workbook as .xlsx"):
        read_territories(tmp_path / "cpts.xls")


def test_file_not_found(tmp_path):
    with pytest.raises(InputError, match=r"missing\.csv: file not found"):
        read_territories(tmp_path / "missing.csv")


def test_xlsx_saved_as_csv(tmp_path):
    book = openpyxl.Workbook()
    path = tmp_path / "renamed.csv"
    book.save(path)
    with pytest.raises(InputError, match=r"renamed\.csv: this is not a text CSV file but a zip"):
        read_territories(path)


def test_bad_arguments():
    table = pd.DataFrame({"cpts": ["A"], "insee": ["42218"]})
    with pytest.raises(InputError, match="`threshold` was 0"):
        read_territories(table, threshold=0)
    with pytest.raises(InputError, match="`sheet` only applies"):
        read_territories(table, sheet="x")
    with pytest.raises(InputError, match="`source` was a int"):
        read_territories([1, 2])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Outlines
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sud_est(isere) -> dict[str, shapely.Geometry]:
    """Lambert-93 geometries of three Isère communes and a west/east cut of Eybens."""
    l93 = isere.to_crs(2154).set_index("insee").geometry
    eybens = l93[EYBENS]
    x0, y0, x1, y1 = eybens.bounds
    cx = eybens.centroid.x
    west = eybens.intersection(shapely.box(x0 - 1, y0 - 1, cx, y1 + 1))
    return {
        SMH: l93[SMH], POISAT: l93[POISAT], EYBENS: eybens,
        "eybens_west": west, "eybens_east": eybens.difference(west),
        "eybens_40": eybens.intersection(shapely.box(x0 - 1, y0 - 1, x0 + 0.4 * (x1 - x0),
                                                     y1 + 1)),
    }


def outlines(shapes: dict[str, shapely.Geometry], crs=2154, **columns) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"cpts": list(shapes), **columns}, geometry=list(shapes.values()),
                            crs=crs)


def test_geojson_outline_of_three_communes(tmp_path, isere, sud_est, no_warning):
    union = shapely.union_all([sud_est[SMH], sud_est[POISAT], sud_est[EYBENS]])
    path = tmp_path / "cpts.geojson"
    outlines({"Sud-Est Grenoblois": union}, statut=["ACI signé"]).to_crs(4326).to_file(path)
    df = read_territories(path, communes=isere)
    assert list(df.columns) == COLUMNS
    assert df["insee"].tolist() == [EYBENS, POISAT, SMH]
    assert set(df["cpts_id"]) == {"sud-est-grenoblois"}
    assert set(df["status"]) == {"ACI signé"}
    assert set(df["row"]) == {2} and set(df["share"]) == {1.0}
    assert df.attrs["form"] == "outlines" and df.attrs["source"] == "cpts.geojson"
    assert all(isinstance(v, str | int | float | list) for v in df.attrs.values())
    fractions = outline_fractions(path, communes=isere)
    assert list(fractions.columns) == ["insee", "nom", "cpts", "fraction", "assigned", "split"]
    assert not fractions["split"].any()
    assert set(fractions.loc[fractions["assigned"], "insee"]) == {EYBENS, POISAT, SMH}


def test_threshold(isere, sud_est, no_warning):
    union = shapely.union_all([sud_est[SMH], sud_est[POISAT], sud_est["eybens_40"]])
    gdf = outlines({"SEG": union})
    assert read_territories(gdf, communes=isere)["insee"].tolist() == [POISAT, SMH]
    assert read_territories(gdf, communes=isere, threshold=0.3)["insee"].tolist() == [
        EYBENS, POISAT, SMH]


def test_commune_split_between_outlines_is_reported(isere, sud_est):
    gdf = outlines({
        "A": shapely.union_all([sud_est[SMH], sud_est["eybens_west"]]),
        "B": shapely.union_all([sud_est[POISAT], sud_est["eybens_east"]]),
    })
    with pytest.warns(CptsGeoWarning, match=r"DataFrame: 1 commune\(s\) are split between CPTS "
                      r"outlines .*38158 Eybens \(A \d+%, B \d+%\)"):
        df = read_territories(gdf, communes=isere)
    fractions = outline_fractions(gdf, communes=isere)
    split = fractions[fractions["split"]]
    assert split["insee"].tolist() == [EYBENS, EYBENS]
    assert set(split["cpts"]) == {"A", "B"} and set(split["nom"]) == {"Eybens"}
    assert split["fraction"].sum() == pytest.approx(1, abs=1e-6)
    assert split["assigned"].tolist() == (split["fraction"] >= 0.5).tolist()
    assert set(df.loc[df["cpts"] == "A", "insee"]) >= {SMH}
    assert set(df.loc[df["cpts"] == "B", "insee"]) >= {POISAT}
    # attrs hold scalars only: concatenating or merging membership tables works
    assert len(pd.concat([df[df["cpts"] == "A"], df[df["cpts"] == "B"]])) == len(df)
    assert len(df.merge(df[["insee", "cpts"]], on=["insee", "cpts"])) == len(df)
    assert not any(isinstance(v, pd.DataFrame) for v in df.attrs.values())


def test_split_commune_covered_by_no_single_outline(isere, sud_est):
    # at threshold 0.8 neither half of Eybens is enough, but together they cover it
    gdf = outlines({
        "A": shapely.union_all([sud_est[SMH], sud_est["eybens_west"]]),
        "B": shapely.union_all([sud_est[POISAT], sud_est["eybens_east"]]),
    })
    with pytest.warns(CptsGeoWarning, match="38158 Eybens"):
        df = read_territories(gdf, communes=isere, threshold=0.8)
    assert EYBENS not in set(df["insee"])
    fractions = outline_fractions(gdf, communes=isere, threshold=0.8)
    split = fractions[fractions["split"]]
    assert set(split["insee"]) == {EYBENS} and not split["assigned"].any()


def test_geopackage_outlines_and_default_reference(tmp_path, sud_est, no_warning):
    path = tmp_path / "cpts.gpkg"
    gdf = outlines({"SEG": shapely.union_all([sud_est[SMH], sud_est[POISAT]])},
                   cpts_id=["seg-38"], date=["9 juillet 2020"])
    gdf.to_file(path, layer="cpts")
    df = read_territories(path)  # communes loaded from the bundle for the départements touched
    assert df["insee"].tolist() == [POISAT, SMH]
    assert set(df["cpts_id"]) == {"seg-38"}
    assert set(df["status_date"]) == {pd.Timestamp("2020-07-09")}
    assert read_territories(path, sheet="cpts")["insee"].tolist() == [POISAT, SMH]


def test_outlines_in_lyon_use_arrondissements(no_warning):
    arrondissements = load_communes("69", arrondissements=True).set_index("insee")
    lyon = gpd.GeoDataFrame({"CPTS": ["Lyon 3"]},
                            geometry=[arrondissements.loc["69383", "geometry"]], crs=4326)
    df = read_territories(lyon)
    assert df["insee"].tolist() == ["69383"]
    assert df["nom"].tolist() == ["Lyon 3e Arrondissement"]


def test_features_of_one_cpts_are_merged(isere, sud_est, no_warning):
    gdf = outlines({"x": sud_est["eybens_west"], "y": sud_est["eybens_east"]})
    gdf["cpts"] = ["SEG", "SEG"]
    df = read_territories(gdf, communes=isere)
    assert df["insee"].tolist() == [EYBENS]
    assert df["row"].tolist() == [2]


def test_outlines_without_crs(tmp_path, isere, sud_est):
    gdf = outlines({"SEG": sud_est[SMH]}, crs=None)
    with pytest.raises(InputError, match="DataFrame: the outlines have no coordinate reference"):
        read_territories(gdf, communes=isere)
    path = tmp_path / "nocrs.gpkg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyogrio: 'crs' was not provided
        gdf.to_file(path)
    with pytest.raises(InputError,
                       match=r"nocrs\.gpkg: the outlines have no coordinate reference"):
        read_territories(path)


def test_outlines_with_a_wrong_crs(tmp_path, sud_est):
    # Lambert-93 coordinates in a GeoJSON without "crs" member: read as longitude/latitude
    feature = {"type": "Feature", "properties": {"cpts": "SEG"},
               "geometry": shapely.geometry.mapping(sud_est[SMH])}
    path = write(tmp_path, json.dumps({"type": "FeatureCollection", "features": [feature]}),
                 "l93.geojson")
    with pytest.raises(InputError, match=r"l93.geojson: the outlines are not in France in their "
                       r"declared CRS EPSG:4326"):
        read_territories(path)


def test_invalid_outline_is_an_error(isere, sud_est):
    bowtie = shapely.Polygon([(5.70, 45.15), (5.80, 45.20), (5.80, 45.15), (5.70, 45.20)])
    gdf = gpd.GeoDataFrame({"cpts": ["A", "B"]},
                           geometry=[outlines({"A": sud_est[SMH]}).to_crs(4326).geometry[0],
                                     bowtie], crs=4326)
    with pytest.raises(TerritoryError, match=r"row 3, column 'geometry'.*invalid outline "
                       r"\(Self-intersection") as exc:
        read_territories(gdf, communes=isere)
    assert [p.row for p in exc.value.problems] == [3]


def test_outline_with_a_spike_is_repaired_with_a_warning(isere, sud_est):
    (poisat,) = sud_est[POISAT].geoms
    ring = list(poisat.exterior.coords)
    x, y = ring[5]
    spiked = shapely.Polygon([*ring[:6], (x + 300, y + 300), *ring[5:]])
    assert not spiked.is_valid
    with pytest.warns(CptsGeoWarning, match=r"1 invalid outline\(s\) were repaired.*row 2"):
        df = read_territories(outlines({"P": spiked}), communes=isere)
    assert df["insee"].tolist() == [POISAT]


def test_outline_covering_no_commune(isere, sud_est):
    small = sud_est[POISAT].centroid.buffer(100)
    gdf = outlines({"Tiny": small, "SEG": sud_est[SMH]})
    with pytest.raises(TerritoryError, match=r"row 2.*'Tiny' covers no commune at 50% or more "
                       r"of its area \(largest: Poisat 38309"):
        read_territories(gdf, communes=isere)


def test_outline_problems_in_attributes(isere, sud_est):
    gdf = outlines({"A": sud_est[SMH], "B": sud_est[POISAT]}, statut=["aci", "bientôt"])
    gdf["cpts"] = ["A", " "]
    with pytest.raises(TerritoryError) as exc:
        read_territories(gdf, communes=isere)
    assert problems_of(exc) == [(3, "cpts", " "), (3, "statut", "bientôt")]


def test_geojson_of_points_is_a_table(tmp_path, no_warning):
    gdf = gpd.GeoDataFrame({"cpts": ["A"], "insee": ["42218"]},
                           geometry=[shapely.Point(4.39, 45.43)], crs=4326)
    path = tmp_path / "points.geojson"
    gdf.to_file(path)
    df = read_territories(path)
    assert df["insee"].tolist() == ["42218"]
    assert df.attrs["form"] == "long"


def test_excel_sep_hint_line(tmp_path, no_warning):
    path = write(tmp_path, "sep=;\r\ncpts;insee\r\nA;42218\r\n")
    assert read_territories(path)["row"].tolist() == [2]  # Excel hides the sep= line


def test_malformed_geopackage(tmp_path):
    path = tmp_path / "bad.gpkg"
    path.write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"bad\.gpkg: cannot be read as a GeoPackage file"):
        read_territories(path)


def test_overseas_outlines_use_a_local_projection(no_warning):
    reunion = load_communes("974").set_index("insee")
    shape = shapely.union_all([reunion.loc["97411", "geometry"], reunion.loc["97418",
                                                                             "geometry"]])
    gdf = gpd.GeoDataFrame({"cpts": ["Nord Réunion"]}, geometry=[shape], crs=4326)
    df = read_territories(gdf.to_crs(2975))
    assert df["insee"].tolist() == ["97411", "97418"]
    assert df["nom"].tolist() == ["Saint-Denis", "Sainte-Marie"]


def test_geojson_of_lines_is_refused_with_a_hint(tmp_path):
    loire = load_communes("42")
    lines = loire[loire["insee"] == "42218"][["geometry"]].assign(cpts="A")
    lines["geometry"] = lines.geometry.boundary
    path = tmp_path / "lines.geojson"
    lines.to_file(path, driver="GeoJSON")
    with pytest.raises(InputError, match=r"lines\.geojson: the geometries are .*LineString.*"
                                         r"must be polygons"):
        read_territories(path)


# ---------------------------------------------------------------------------------------------
# Published lists as planners type them (issue 12)
# ---------------------------------------------------------------------------------------------
VEZELIN = "42268"  # Vézelin-sur-Loire: communes déléguées Amions, Dancé, Saint-Paul-de-Vézelin


def test_two_merged_communes_in_a_csv_are_the_commune_nouvelle_once(tmp_path):
    path = write(tmp_path, "cpts;commune;dep\nRoannais;Amions;42\nRoannais;Dancé;Loire\n"
                           "Roannais;Roanne;42\n")
    with pytest.warns(CptsGeoWarning) as record:
        df = read_territories(path)
    assert [str(w.message) for w in record] == [
        "cpts.csv: 2 name(s) were resolved with care: row 2: 'Amions' is a former name: Amions "
        "(commune déléguée 42004, now Vézelin-sur-Loire 42268); counted as Vézelin-sur-Loire "
        "(42268); row 3: 'Dancé' is a former name: Dancé (commune déléguée 42082, now "
        "Vézelin-sur-Loire 42268); counted as Vézelin-sur-Loire (42268)",
        "cpts.csv: 1 row(s) name former communes now merged into one commune, listed once: "
        "'Amions' (row 2) and 'Dancé' (row 3) are both 42268 Vézelin-sur-Loire in CPTS "
        "'Roannais'",
    ]
    assert df["insee"].tolist() == [VEZELIN, "42187"]
    assert df["row"].tolist() == [2, 4]


def test_merged_communes_in_a_wide_list_and_by_former_codes():
    table = pd.DataFrame({"cpts": ["Roannais"],
                          "communes": ["Roanne, Amions, Saint-Paul-de-Vézelin et Dancé"],
                          "dep": ["42"]})
    with pytest.warns(CptsGeoWarning) as record:
        df = read_territories(table)
    assert df["insee"].tolist() == ["42187", VEZELIN]
    merged = [str(w.message) for w in record if "merged into one commune" in str(w.message)]
    assert merged == ["DataFrame: 2 row(s) name former communes now merged into one commune, "
                      "listed once: 'Amions' (row 2) and 'Saint-Paul-de-Vézelin' (row 2) are both "
                      "42268 Vézelin-sur-Loire in CPTS 'Roannais'; 'Amions' (row 2) and 'Dancé' "
                      "(row 2) are both 42268 Vézelin-sur-Loire in CPTS 'Roannais'"]
    table = pd.DataFrame({"cpts": ["Roannais"] * 2, "insee": ["42004", "42082"]})
    with pytest.warns(CptsGeoWarning) as record:
        assert read_territories(table)["insee"].tolist() == [VEZELIN]
    assert any("'42004' (row 2) and '42082' (row 3) are both 42268" in str(w.message)
               for w in record)
    assert any("2 code(s) are not current communes and were resolved" in str(w.message)
               for w in record)


def test_the_same_former_commune_twice_stays_a_duplicate():
    table = pd.DataFrame({"cpts": ["Roannais"] * 2, "commune": ["Amions", "Amions"],
                          "dep": ["42", "42"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CptsGeoWarning)
        with pytest.raises(TerritoryError, match=r"row 3.*duplicate: commune 42268 "
                           r"\(Vézelin-sur-Loire\) is listed in rows 2 and 3"):
            read_territories(table)


@pytest.mark.parametrize("dep", ["Loire", "loire", "042", "42", 42, "LOIRE", "Loire (42)"])
def test_a_departement_column_holding_names_or_padded_codes(dep, no_warning):
    if dep == "Loire (42)":
        table = pd.DataFrame({"cpts": ["Gier"], "commune": ["Saint-Joseph (42)"]})
    else:
        table = pd.DataFrame({"cpts": ["Gier"], "commune": ["Saint-Joseph"], "dep": [dep]})
    assert read_territories(table)["insee"].tolist() == ["42242"]


@pytest.mark.parametrize(("cell", "deps"), [
    ("Haute Loire", {"43"}), ("Loire et Rhône", {"42", "69"}), ("42 69", {"42", "69"}),
    ("Isère, Rhône", {"38", "69"}), ("Bouches du Rhône", {"13"}),
])
def test_departement_cells_listing_several_or_names_with_spaces(cell, deps):
    from cpts_geo.membership import _parse_departements

    assert _parse_departements(cell) == deps


def test_gieres_et_venon_in_a_wide_list_is_two_names(no_warning):
    table = pd.DataFrame({"cpts": ["Sud-Est Grenoblois"],
                          "communes": ["Saint-Martin-d'Hères, Poisat, Gières et Venon"],
                          "departement": ["Isère"]})
    assert read_territories(table)["insee"].tolist() == [SMH, POISAT, "38179", "38533"]


def test_an_ambiguous_name_says_where_the_rest_of_its_cpts_lies():
    # Venon exists in the Eure (27677) and the Isère (38533); the CPTS lies in the Isère
    table = pd.DataFrame({"cpts": ["Sud-Est Grenoblois"],
                          "communes": ["Saint-Martin-d'Hères, Poisat, Gières et Venon"]})
    with pytest.raises(TerritoryError) as exc:
        read_territories(table)
    (problem,) = exc.value.problems
    assert (problem.row, problem.value) == (2, "Venon")
    assert problem.message == (
        "'Venon' matches 2 communes: Venon (27677, 27); Venon (38533, 38); give the INSEE code or "
        "the département; the other communes of CPTS 'Sud-Est Grenoblois' are all in département "
        "38: Venon (38533) is probably meant: write 'Venon (38)', its INSEE code, or add a "
        "département column")


def test_arrondissements_in_a_rhone_file(tmp_path, no_warning):
    path = write(tmp_path, "CPTS;Commune;Département\nLyon Centre;3ᵉ arrondissement;Rhône\n"
                           "Lyon Centre;5ème arrondissement de Lyon;69\nLyon Centre;Lyon 7e;69\n"
                           "Lyon Centre;Lyon 1er;\n")
    assert read_territories(path)["insee"].tolist() == ["69383", "69385", "69387", "69381"]


def test_a_real_published_list_with_merged_communes_and_arrondissements(tmp_path):
    """A list as a press release gives it: former communes, arrondissements, qualifiers."""
    path = write(tmp_path, (
        "Territoire;Communes membres\n"
        "CPTS Roannais;\"Roanne, Amions, Dancé (Loire), Saint-Paul-de-Vézelin et Riorges\"\n"
        "CPTS Lyon 5-9;\"5ème arrondissement de Lyon, Lyon 9e\"\n"
        "CPTS Gier;\"Saint-Chamond, Châteauneuf (42), Trèves (Rhône), Longes (69)\"\n"
    ))
    with pytest.warns(CptsGeoWarning) as record:
        df = read_territories(path)
    assert df.groupby("cpts", sort=False)["insee"].apply(list).to_dict() == {
        "CPTS Roannais": ["42187", VEZELIN, "42184"],
        "CPTS Lyon 5-9": ["69385", "69389"],
        "CPTS Gier": ["42207", "42053", "69252", "69119"],
    }
    messages = [str(w.message) for w in record]
    assert any("3 name(s) were resolved with care" in m for m in messages)
    assert any("'Amions' (row 2) and 'Dancé (Loire)' (row 2) are both 42268" in m
               for m in messages)


# ---------------------------------------------------------------------------------------------
# Workbooks: which sheet, formulas, hostile sizes (issue 14)
# ---------------------------------------------------------------------------------------------
def test_a_hidden_first_sheet_is_never_read_unless_named(tmp_path, no_warning):
    book = workbook({"Ancienne liste": [["cpts", "insee"], ["Gier 2019", "42218"]],
                  "CPTS 2024": [["cpts", "insee"], ["Gier", "42207"]]},
                 hidden=["Ancienne liste"], active=1)
    path = tmp_path / "cpts.xlsx"
    book.save(path)
    df = read_territories(path)
    assert df["cpts"].tolist() == ["Gier"] and df.attrs["sheet"] == "CPTS 2024"
    old = read_territories(path, sheet="Ancienne liste")
    assert old["cpts"].tolist() == ["Gier 2019"] and old.attrs["sheet"] == "Ancienne liste"
    # a hidden active sheet is not read either: the first visible one is
    book.active = 0
    book.save(path)
    assert read_territories(path).attrs["sheet"] == "CPTS 2024"


def test_the_active_sheet_is_read_and_problems_name_it(tmp_path):
    book = workbook({"Notes": [["cpts", "insee"], ["A", "42218"]],
                  "Liste": [["cpts", "insee"], ["B", "42999"]]}, active=1)
    path = tmp_path / "cpts.xlsx"
    book.save(path)
    with pytest.raises(TerritoryError, match=r"cpts\.xlsx \[sheet 'Liste'\], row 2, column "
                       r"'insee': unknown INSEE code 42999"):
        read_territories(path)
    assert read_territories(path, sheet="Notes").attrs["sheet"] == "Notes"


def test_a_formula_without_a_saved_value_says_so(tmp_path):
    book = workbook({"S": [["cpts", "insee"], ["A", "=TEXTE(42218;\"0\")"], ["A", "42207"]]})
    path = tmp_path / "formulas.xlsx"
    book.save(path)  # openpyxl saves formulas without their results, as some exports do
    with pytest.raises(TerritoryError) as exc:
        read_territories(path)
    (problem,) = exc.value.problems
    assert (problem.row, problem.column) == (2, "insee")
    assert str(problem.value) == '=TEXTE(42218;"0")'
    assert problem.message.startswith("formula without a saved value: open and save the file in "
                                      "Excel")


def test_a_stray_value_in_zz50000_is_the_right_error_fast(tmp_path):
    import time

    from helpers import sheet_xml, write_xlsx

    rows = [["cpts", "insee"], ["A", "42218"], ["A", "42207"]]
    path = write_xlsx(tmp_path / "stray.xlsx", [("S", "visible", sheet_xml(
        rows, cells={"ZZ50000": "x"}, dimension="A1:ZZ50000"))])
    start = time.perf_counter()
    with pytest.raises(TerritoryError) as exc:
        read_territories(path)
    assert time.perf_counter() - start < 3
    (problem,) = exc.value.problems
    assert problem.row == 50000 and problem.value == ["x"]
    assert "a value beyond the table's 2 columns (ZZ50000)" in problem.message


def test_hostile_workbooks_are_bounded_before_they_grow(tmp_path):
    from helpers import sheet_xml, write_xlsx

    from cpts_geo.errors import ResourceLimitError

    rows = [["cpts", "insee"], ["A", "42218"]]
    # merged ranges to the last row and to the last cell: clipped to the cells that hold values
    merged = write_xlsx(tmp_path / "merged.xlsx", [("S", "visible", sheet_xml(
        {1: rows[0], 2: rows[1], 3: ["B", "42207"], 4: [None, "42110"]},
        merges=["A3:A1048576", "C1:XFD1048576"], dimension="A1:XFD1048576"))])
    assert read_territories(merged)["cpts"].tolist() == ["A", "B", "B"]
    whole = write_xlsx(tmp_path / "whole.xlsx", [("S", "visible", sheet_xml(
        rows, merges=["A1:XFD1048576"]))])
    with pytest.raises(InputError, match="'cpts' and 'cpts' are both read as 'cpts'"):
        read_territories(whole)  # every cell of the table is the merged 'cpts'

    # one value in the last cell: refused at once, naming the cell and the limit
    last = write_xlsx(tmp_path / "last.xlsx", [("S", "visible", sheet_xml(
        rows, cells={"XFD1048576": 1}))])
    with pytest.raises(ResourceLimitError, match=r"last\.xlsx: cell XFD1048576 holds 1: the "
                       r"sheet reaches row 1,048,576, more than the limit of 200,000 "
                       r"\(`max_rows=200000`\)"):
        read_territories(last)
    # a part that decompresses beyond max_bytes is refused before it is parsed
    padded = write_xlsx(tmp_path / "padded.xlsx", [("S", "visible", sheet_xml(
        rows, padding=3_000_000))])
    assert padded.stat().st_size < 10_000
    with pytest.raises(ResourceLimitError, match=r"decompresses to 2\.9 MiB .* more than the "
                       r"limit of 1\.0 MiB \(`max_bytes=1048576`\)"):
        read_territories(padded, max_bytes=2**20)
    assert read_territories(padded)["insee"].tolist() == ["42218"]
    with pytest.raises(ResourceLimitError, match=r"`max_cells=3`.*--max-cells"):
        read_territories(merged, max_cells=3)


def test_file_size_and_rows_limits_apply_to_every_file(tmp_path):
    from cpts_geo.errors import ResourceLimitError

    path = write(tmp_path, "cpts,insee\n" + "A,42218\n" * 50)
    with pytest.raises(ResourceLimitError, match=r"cpts\.csv: the file is 0\.0 MiB \(411 bytes\), "
                       r"more than the limit of 0\.0 MiB \(`max_bytes=400`\).*max_bytes=\.\.\."):
        read_territories(path, max_bytes=400)
    with pytest.raises(ResourceLimitError, match=r"the table has 50 rows or more.*`max_rows=10`"):
        read_territories(path, max_rows=10)
    with pytest.raises(InputError, match="`max_rows` was 0"):
        read_territories(path, max_rows=0)


# ---------------------------------------------------------------------------------------------
# JSON and outlines that used to be accepted silently or end in a traceback (issue 14)
# ---------------------------------------------------------------------------------------------
SQUARE = [[[5.70, 45.15], [5.75, 45.15], [5.75, 45.20], [5.70, 45.20], [5.70, 45.15]]]


def _collection(geometry, properties=None, **extra):
    return json.dumps({"type": "FeatureCollection", **extra, "features": [
        {"type": "Feature", "properties": properties or {"cpts": "A"}, "geometry": geometry}]})


def test_a_declared_unknown_crs_is_refused(tmp_path):
    text = _collection({"type": "Polygon", "coordinates": SQUARE},
                       crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::99999"}})
    with pytest.raises(InputError, match=r"declares the coordinate reference system "
                       r"'urn:ogc:def:crs:EPSG::99999', which is unknown"):
        read_territories(write(tmp_path, text, "crs.geojson"))


def test_a_geometry_collection_is_no_table(tmp_path):
    text = _collection({"type": "GeometryCollection",
                        "geometries": [{"type": "Polygon", "coordinates": SQUARE}]})
    with pytest.raises(InputError, match="the geometries are GeometryCollection; CPTS outlines "
                       "must be polygons"):
        read_territories(write(tmp_path, text, "gc.geojson"))


@pytest.mark.parametrize(("properties", "column"), [
    ({"cpts": {"nom": "A"}}, "cpts"), ({"cpts": ["A", "B"]}, "cpts"),
    ({"cpts": "A", "statut": {"x": 1}}, "statut"),
])
def test_nested_json_values_are_not_cpts_names(tmp_path, properties, column):
    text = _collection({"type": "Polygon", "coordinates": SQUARE}, properties)
    with pytest.raises(TerritoryError, match=r"a nested value \(a JSON object or list\)") as exc:
        read_territories(write(tmp_path, text, "nested.geojson"))
    assert [(p.row, p.column) for p in exc.value.problems] == [(2, column)]


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply to be read"),
    (_collection({"type": "Polygon", "coordinates": SQUARE}).replace("5.7,", "NaN,", 1),
     "NaN is not a JSON value"),
    (_collection({"type": "Polygon", "coordinates": SQUARE}).replace("5.7,", "1e400,", 1),
     "the number 1e400… is too large"),
])
def test_hostile_json_is_one_input_error(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read_territories(write(tmp_path, text, "hostile.geojson"))


def test_nan_coordinates_in_a_geopackage_are_a_problem_of_their_row(tmp_path, sud_est):
    path = tmp_path / "nan.gpkg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shapely: invalid value in from_wkt
        nan = shapely.from_wkt("POLYGON ((5.7 45.15, 5.75 45.15, NaN 45.2, 5.7 45.2, 5.7 45.15))")
        gdf = gpd.GeoDataFrame({"cpts": ["A", "B"]}, geometry=[
            outlines({"A": sud_est[SMH]}).to_crs(4326).geometry[0], nan], crs=4326)
        gdf.to_file(path)
    with pytest.raises(TerritoryError, match=r"row 3, column 'geometry': the outline has "
                       r"coordinates that are not numbers \(NaN or infinite\)"):
        read_territories(path)


def test_the_geopackage_layer_error_names_the_command_line_option(tmp_path, sud_est):
    path = tmp_path / "two.gpkg"
    outlines({"A": sud_est[SMH]}).to_file(path, layer="cpts")
    outlines({"B": sud_est[POISAT]}).to_file(path, layer="old")
    with pytest.raises(InputError, match=r"several layers \['cpts', 'old'\]: choose one with "
                       r"sheet='layer name' \(command line: --sheet NAME\)"):
        read_territories(path)
    assert read_territories(path, sheet="old")["insee"].tolist() == [POISAT]


def test_a_sheet_named_like_a_number_is_read_by_its_name(tmp_path, no_warning):
    book = workbook({"Notes": [["à lire"]], "2024": [["cpts", "insee"], ["Gier", "42207"]]})
    path = tmp_path / "cpts.xlsx"
    book.save(path)
    assert read_territories(path, sheet="2024").attrs["sheet"] == "2024"
    assert read_territories(path, sheet="1").attrs["sheet"] == "2024"  # no sheet named "1"
