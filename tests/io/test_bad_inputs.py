"""The bad-input corpus: territory files as planners (and accidents) make them, each with its
exact outcome, through the API and the command line.

Every file is built here, in code, once per session. Each case states what must happen: the
error type and what its message names (the value, the cell, the limit), with the problems of a
:class:`~cpts_geo.errors.TerritoryError` one by one; or, for a file that must be accepted, the
INSEE codes read and the warning given. The same files then go through ``cpts-geo`` in process
(exit status 2, one ``error:`` block, no traceback; or exit 0 and the warning), and a few through
a real subprocess.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import openpyxl
import pytest
import shapely
from helpers import ROOT, sheet_xml, workbook, write_xlsx

import cpts_geo
from cpts_geo.cli import main
from cpts_geo.errors import CptsGeoWarning, InputError, ResourceLimitError, TerritoryError
from cpts_geo.io import read_territories


@dataclass(frozen=True)
class Case:
    """One file of the corpus and what reading it must do."""

    name: str
    build: Callable[[Path], object]
    error: type[Exception] | None = None
    says: str = ""  # a regular expression the error (or warning) must contain
    problems: tuple[tuple[int | None, str | None, object], ...] | None = None
    codes: tuple[str, ...] = ()  # the INSEE codes read, when the file is accepted
    options: dict[str, Any] = field(default_factory=dict)
    sheet: str | None = None  # attrs["sheet"] of an accepted workbook
    seconds: float = 5.0  # reading must take less


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------
def text(content: str, encoding: str = "utf-8") -> Callable[[Path], object]:
    return lambda path: path.write_bytes(content.encode(encoding))


def raw(content: bytes) -> Callable[[Path], object]:
    return lambda path: path.write_bytes(content)


def book(sheets: dict[str, list[list[object]]], *, hidden: tuple[str, ...] = (),
         active: int = 0, merges: tuple[str, ...] = ()) -> Callable[[Path], object]:
    return lambda path: workbook(sheets, hidden=hidden, active=active, merges=merges).save(path)


def handmade(sheets: list[tuple[str, str, str]], active: int = 0) -> Callable[[Path], object]:
    return lambda path: write_xlsx(path, sheets, active)


def collection(geometry: dict[str, Any] | None, properties: dict[str, Any] | None = None,
               **extra: Any) -> Callable[[Path], object]:
    doc = {"type": "FeatureCollection", **extra, "features": [
        {"type": "Feature", "properties": properties or {"cpts": "A"}, "geometry": geometry}]}
    return text(json.dumps(doc))


def gpkg(frames: dict[str, gpd.GeoDataFrame]) -> Callable[[Path], object]:
    def build(path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))  # NaN, no CRS
            for layer, frame in frames.items():
                frame.to_file(path, layer=layer, driver="GPKG")

    return build


def _nan_polygon() -> shapely.Geometry:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return shapely.from_wkt("POLYGON ((5.7 45.15, 5.75 45.15, NaN 45.2, 5.7 45.2, 5.7 45.15))")


def _unreadable_crs(path: Path) -> None:
    import sqlite3

    gpkg({"cpts": _frame("A", _commune("38421"))})(path)
    con = sqlite3.connect(path)
    con.execute("INSERT INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, "
                "organization_coordsys_id, definition) VALUES ('x', 99999, 'NONE', 99999, "
                "'undefined')")
    con.execute("UPDATE gpkg_geometry_columns SET srs_id = 99999")
    con.commit()
    con.close()


def _commune(code: str) -> shapely.Geometry:
    communes = cpts_geo.load_communes(code[:2])
    return communes.set_index("insee").loc[code, "geometry"]


def _frame(cpts: str, geometry: shapely.Geometry, crs: int | None = 4326,
           **columns: Any) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"cpts": [cpts], **{k: [v] for k, v in columns.items()}},
                            geometry=[geometry], crs=crs)


SQUARE = [[[5.70, 45.15], [5.75, 45.15], [5.75, 45.20], [5.70, 45.20], [5.70, 45.15]]]
POLYGON = {"type": "Polygon", "coordinates": SQUARE}
ISERE_250 = tuple(sorted(cpts_geo.load_communes("38")["insee"])[:250])
HEADER = [["cpts", "insee"]]


def _status_on_every_row(path: Path) -> None:
    rows = "".join(f"A,{code},en cours\n" for code in ISERE_250)
    path.write_text("cpts,insee,statut\n" + rows, encoding="utf-8")


def _misspelt_names(path: Path) -> None:
    rows = "".join(f"A,Zorglub-sur-Loire {i}\n" for i in range(3000))
    path.write_text("cpts,commune\n" + rows, encoding="utf-8")


def _workbook_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    openpyxl.Workbook().save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------
CSV = [
    Case("unknown_code.csv", text("cpts,insee\nA,42218\nA,42999\n"), TerritoryError,
         "unknown INSEE code 42999", ((3, "insee", "42999"),)),
    Case("postal_code_typed_as_insee.csv",
         text("cpts,insee,commune\nSEG,38400,Saint-Martin-d'Hères\n"), TerritoryError,
         r"'38400' is the INSEE code of Saint-Jean-de-Moirans \(38\), but the row names "
         r".Saint-Martin-d'Hères. \(38421\), whose postal code is 38400: write the INSEE code "
         "38421", ((2, "insee", "38400"),)),
    Case("postal_code_typed_as_insee_trusted.csv",
         text("cpts,insee,commune\nSEG,38400,Saint-Martin-d'Hères\n"), None,
         "give a commune code and a name that disagree; the code is used", codes=("38400",),
         options={"trust_codes": True}),
    Case("postal_code_that_is_no_insee_code.csv", text("cpts,insee\nA,38000\n"), TerritoryError,
         r"unknown INSEE code 38000.*it is the postal code of Grenoble \(38185\)",
         ((2, "insee", "38000"),)),
    Case("code_and_name_disagree.csv", text("cpts,insee,nom commune\nA,42218,Saint-Chamond\n"),
         TerritoryError, r"code 42218 is Saint-Étienne \(42\), but the row also says "
         r"'Saint-Chamond' \(42207\)", ((2, "insee", "42218"),)),
    Case("misspelt_name_beside_its_code.csv",
         text("cpts,insee,commune\nA,42192,Rozie-Côtes-d’Aurec\n"), None,
         "code 42192 is Rozier-Côtes-d'Aurec, spelt 'Rozie-Côtes-d’Aurec'", codes=("42192",)),
    Case("date_typo_0202.csv", text("cpts,insee,date\nA,42218,0202-01-01\n"), TerritoryError,
         "status date '0202-01-01' is outside 2000-2099", ((2, "date", "0202-01-01"),)),
    Case("date_no_such_day.csv", text("cpts,insee,date\nA,42218,31/02/2020\n"), TerritoryError,
         "'31/02/2020' is not a valid date", ((2, "date", "31/02/2020"),)),
    Case("status_en_cours_on_every_row.csv", _status_on_every_row, TerritoryError,
         r"^250 problems in status_en_cours_on_every_row\.csv: correct these cells in the file "
         r"and read it again\n\S+, rows 2-251, column 'statut': 'en cours' is not a CPTS status"
         r"[^\n]*\(value: 'en cours'\)$",
         tuple((r, "statut", "en cours") for r in range(2, 252))),
    Case("unknown_status.csv", text("cpts,insee,statut\nA,42218,bientôt\n"), TerritoryError,
         "'bientôt' is not a CPTS status", ((2, "statut", "bientôt"),)),
    Case("share_150_percent.csv", text("cpts,insee,part\nA,42218,150 %\n"), TerritoryError,
         "share '150 %' is out of range", ((2, "part", "150 %"),)),
    Case("share_without_its_sign.csv", text("cpts,insee,part\nA,42218,50\n"), TerritoryError,
         r"write a percentage with its sign \('50 %'\)", ((2, "part", "50"),)),
    Case("duplicate_row.csv", text("cpts,insee\nA,42218\nA,42218\n"), TerritoryError,
         r"duplicate: commune 42218 \(Saint-Étienne\) is listed in rows 2 and 3",
         ((3, "insee", "42218"),)),
    Case("missing_cpts_name.csv", text("cpts,insee\nA,42218\n,42207\n"), TerritoryError,
         "missing CPTS name", ((3, "cpts", ""),)),
    Case("empty_commune.csv", text("cpts,insee,statut\nA,42218,\nA,,aci\n"), TerritoryError,
         "empty commune", ((3, "insee", ""),)),
    Case("missing_commune_column.csv", text("cpts,statut\nA,aci\n"), InputError,
         r"missing column\(s\) 'commune'; columns found: 'cpts', 'statut'"),
    Case("missing_cpts_column.csv", text("insee\n42218\n"), InputError,
         r"missing column\(s\) 'cpts'"),
    Case("unquoted_list_of_communes.csv",
         text("cpts,communes,dep\nGier,Saint-Chamond, Lorette,42\n"), TerritoryError,
         "the row has 4 cells but the header only 3 columns",
         ((2, None, ["42"]),)),
    Case("unbalanced_quote.csv", text('cpts,insee\n"A,42218\nB,42207\n'), InputError,
         "malformed CSV near line 3"),
    Case("empty.csv", raw(b""), InputError, "empty.csv: the file is empty"),
    Case("header_only.csv", text("cpts,insee\n\n"), InputError,
         r"the file has a header \(row 1\) but no data rows"),
    Case("workbook_saved_as.csv", raw(_workbook_bytes()), InputError,
         "not a text CSV file but a zip archive"),
    Case("binary.csv", raw(b"cpts,insee\n\x00\x01\x02\x03"), InputError,
         "not a text CSV file .it contains binary data"),
    Case("ambiguous_name.csv", text("cpts,commune\nA,Saint-Joseph\n"), TerritoryError,
         "'Saint-Joseph' matches 4 communes", ((2, "commune", "Saint-Joseph"),)),
    Case("ambiguous_name_in_a_cpts_of_one_departement.csv",
         text("cpts,commune\nGier,Saint-Chamond\nGier,Lorette\nGier,Saint-Joseph\n"),
         TerritoryError, r"the other communes of CPTS 'Gier' are all in département 42: "
         r"Saint-Joseph \(42242\) is probably meant: write 'Saint-Joseph \(42\)'",
         ((4, "commune", "Saint-Joseph"),)),
    Case("misspelt_name.csv", text("cpts,nom commune,dep\nA,Saint-Chamon,42\n"), TerritoryError,
         r"'Saint-Chamon' is not a commune name in département\(s\) 42; closest: Saint-Chamond "
         r"\(42207, 42\)", ((2, "nom commune", "Saint-Chamon"),)),
    Case("3000_misspelt_names.csv", _misspelt_names, TerritoryError,
         "closest names are searched for the first 20 unknown names only",
         tuple((r, "commune", f"Zorglub-sur-Loire {r - 2}") for r in range(2, 3002))),
    Case("departement_names_and_padded_codes.csv",
         text("cpts;commune;département\nGier;Saint-Joseph;Loire\nGier;Trèves;Rhône\n"
              "Gier;Châteauneuf;042\nGier;Saint-Chamond;Haute Loire, Loire\n"), None,
         codes=("42242", "69252", "42053", "42207")),
    Case("bad_departement.csv", text("cpts,commune,departement\nA,Lorette,Loir\n"),
         TerritoryError, "département 'Loir' is not a département",
         ((2, "departement", "Loir"),)),
    Case("commune_outside_its_row_departement.csv",
         text("cpts,insee,departement\nA,42218,69\n"), TerritoryError,
         "commune 42218 .Saint-Étienne. is in département 42, not in 69 as the row says",
         ((2, "insee", "42218"),)),
    Case("two_merged_communes_by_name.csv",
         text("cpts;commune;dep\nRoannais;Amions;42\nRoannais;Dancé;42\nRoannais;Roanne;42\n"),
         None, r"'Amions' \(row 2\) and 'Dancé' \(row 3\) are both 42268 Vézelin-sur-Loire",
         codes=("42268", "42187")),
    Case("two_merged_communes_by_code.csv", text("cpts,insee\nRoannais,42004\nRoannais,42082\n"),
         None, r"'42004' \(row 2\) and '42082' \(row 3\) are both 42268", codes=("42268",)),
    Case("the_same_former_commune_twice.csv",
         text("cpts;commune;dep\nRoannais;Amions;42\nRoannais;Amions;42\n"), TerritoryError,
         r"duplicate: commune 42268 \(Vézelin-sur-Loire\) is listed in rows 2 and 3",
         ((3, "commune", "Amions"),)),
    Case("arrondissements_as_typed.csv",
         text("cpts;commune\nA;5ème arrondissement de Lyon\nA;Lyon 7e\nA;Marseille 1er\n"
              "A;Paris 16ème arr.\nA;Lyon 9ème\n"), None,
         codes=("69385", "69387", "13201", "75116", "69389")),
    Case("arrondissement_in_a_rhone_file.csv",
         text("cpts;commune;département\nLyon Centre;3ᵉ arrondissement;Rhône\n"), None,
         codes=("69383",)),
    Case("arrondissement_without_its_city.csv", text("cpts;commune\nA;3ᵉ arrondissement\n"),
         TerritoryError, r"matches 3 communes: Marseille 3e Arrondissement \(13203, 13\); Lyon "
         r"3e Arrondissement \(69383, 69\); Paris 3e Arrondissement \(75103, 75\); give the "
         "INSEE code or the city", ((2, "commune", "3ᵉ arrondissement"),)),
    Case("city_and_its_own_arrondissement.csv", text("cpts,commune\nA,Lyon\nA,Lyon 3e\n"),
         TerritoryError, r"lists both the city 69123 \(Lyon, row 2\) and its arrondissement "
         "69383", ((3, "commune", "Lyon 3e"),)),
    Case("departements_in_parentheses.csv",
         text("cpts,commune\nGier,Châteauneuf (42)\nGier,Trèves (Rhône)\nGier,Longes (69)\n"),
         None, codes=("42053", "69252", "69119")),
    Case("gieres_et_venon.csv",
         text('cpts,communes,département\nSEG,"Poisat, Gières et Venon",Isère\n'), None,
         codes=("38309", "38179", "38533")),
    Case("gieres_et_venon_without_departement.csv",
         text('cpts,communes\nSEG,"Poisat, Gières et Venon"\n'), TerritoryError,
         r"'Venon' matches 2 communes.*Venon \(38533\) is probably meant",
         ((2, "communes", "Venon"),)),
    Case("postal_code_column.csv",
         text("cpts,code postal,commune\nGier,42800,Saint-Joseph\nGier,42800,Châteauneuf\n"),
         None, codes=("42242", "42053")),
    Case("postal_code_column_disagrees.csv", text("cpts,cp,commune\nGier,42400,Lorette\n"),
         TerritoryError, r"postal code 42400 does not serve 'Lorette': 'Lorette' is Lorette "
         r"\(42123\), whose postal code\(s\) are 42420", ((2, "commune", "Lorette"),)),
    Case("postal_codes_alone.csv", text("cpts,code postal\nGier,42800\n"), InputError,
         "a postal code does not identify a commune"),
    Case("terminal_escape_in_a_name.csv", text('cpts,insee\n"Gier\x1b[2J\x1b[31m",42207\n'),
         None, codes=("42207",)),
    Case("right_to_left_override_in_a_name.csv", text("cpts,insee\n\u202eGier,42207\n"), None,
         codes=("42207",)),
    Case("larger_than_max_bytes.csv", text("cpts,insee\n" + "A,42218\n" * 10), ResourceLimitError,
         r"the file is 0\.0 MiB \(91 bytes\), more than the limit of 0\.0 MiB "
         r"\(`max_bytes=64`\)", options={"max_bytes": 64}),
    Case("more_rows_than_max_rows.csv", text("cpts,insee\n" + "A,42218\n" * 10),
         ResourceLimitError, r"the table has 10 rows or more, more than the limit of 5 "
         r"\(`max_rows=5`\)", options={"max_rows": 5}),
    Case("conflicting_statuses.csv",
         text("cpts,insee,statut\nA,42218,ACI signé\nA,42207,pré-projet\n"), TerritoryError,
         r"CPTS 'A' has conflicting statuses: ACI signé \(row 2\); pré-projet \(row 3\)",
         ((3, "statut", ["ACI signé", "pré-projet"]),)),
    Case("one_id_for_two_cpts.csv", text("cpts,cpts_id,insee\nGier,C1,42207\nOndaine,C1,42095\n"),
         TerritoryError, "cpts_id 'C1' is used by several CPTS", ((3, "cpts_id", "C1"),)),
    Case("windows_1252_semicolons.csv",
         text("CPTS;Nom commune;Département\r\nVallée du Gier;Saint-Chamond;Loire\r\n", "cp1252"),
         None, codes=("42207",)),
    Case("code_of_a_commune_deleguee.csv", text("cpts,insee\nA,42004\n"), None,
         r"42004 \(Amions, commune déléguée\) -> 42268 \(Vézelin-sur-Loire\)", codes=("42268",)),
]

XLSX = [
    Case("hidden_first_sheet.xlsx",
         book({"Ancienne liste": [*HEADER, ["Gier 2019", "42218"]],
               "CPTS 2024": [*HEADER, ["Gier", "42207"]]}, hidden=("Ancienne liste",), active=1),
         codes=("42207",), sheet="CPTS 2024"),
    Case("hidden_active_sheet.xlsx",
         book({"Ancienne liste": [*HEADER, ["Gier 2019", "42218"]],
               "CPTS 2024": [*HEADER, ["Gier", "42207"]]}, hidden=("Ancienne liste",), active=0),
         codes=("42207",), sheet="CPTS 2024"),
    Case("hidden_sheet_named.xlsx",
         book({"Ancienne liste": [*HEADER, ["Gier 2019", "42218"]],
               "CPTS 2024": [*HEADER, ["Gier", "42207"]]}, hidden=("Ancienne liste",), active=1),
         codes=("42218",), sheet="Ancienne liste", options={"sheet": "Ancienne liste"}),
    Case("active_second_sheet.xlsx",
         book({"Brouillon": [*HEADER, ["X", "42218"]], "Liste": [*HEADER, ["Gier", "42110"]]},
              active=1), codes=("42110",), sheet="Liste"),
    Case("no_table_on_the_active_sheet.xlsx",
         book({"Notes": [["à lire"]], "CPTS": [*HEADER, ["Gier", "42207"]]}), InputError,
         r"\[sheet 'Notes'\]: missing column.*the workbook's sheets are 'Notes' \(read\), 'CPTS': "
         r"choose one with sheet='name' \(command line: --sheet NAME\)"),
    Case("every_sheet_hidden.xlsx",
         handmade([("A", "hidden", sheet_xml([*HEADER, ["Gier", "42207"]])),
                   ("B", "veryHidden", sheet_xml([*HEADER, ["Gier", "42207"]]))]),
         InputError, r"every sheet is hidden \('A', 'B'\): name the one to read with sheet="),
    Case("problem_names_the_sheet.xlsx",
         book({"Notes": [["à lire"]], "Liste": [*HEADER, ["Gier", "42207"], ["Gier", "42999"]]},
              active=1), TerritoryError,
         r"problem_names_the_sheet\.xlsx \[sheet 'Liste'\], row 3, column 'insee': unknown INSEE "
         "code 42999", ((3, "insee", "42999"),)),
    Case("unknown_sheet.xlsx", book({"Liste": [*HEADER, ["Gier", "42207"]]}), InputError,
         r"no sheet named 'Nope'; the sheets are \['Liste'\]", options={"sheet": "Nope"}),
    Case("formula_without_a_saved_value.xlsx",
         book({"S": [*HEADER, ["Gier", "=TEXTE(42207;\"0\")"], ["Gier", "42110"]]}),
         TerritoryError, "formula without a saved value: open and save the file in Excel",
         ((2, "insee", ...),)),
    Case("formula_with_its_saved_value.xlsx",
         handmade([("S", "visible", sheet_xml([*HEADER, ["Gier", ("formula", "42000+207",
                                                                  42207)]]))]),
         codes=("42207",), sheet="S"),
    Case("date_typo_0202.xlsx",
         book({"S": [["cpts", "insee", "date"], ["Gier", "42207", "0202-01-01"]]}),
         TerritoryError, "status date '0202-01-01' is outside 2000-2099",
         ((2, "date", "0202-01-01"),)),
    Case("not_a_workbook.xlsx", raw(b"PK\x03\x04 this is no workbook"), InputError,
         r"cannot be read as an Excel workbook \(\.xlsx\)"),
    Case("cpts_name_merged_over_its_rows.xlsx",
         book({"S": [["Liste des CPTS (ARS, 2024)"], [], ["Nom CPTS", "Code INSEE"],
                     ["Gier", 42207], [None, "42110"], [None, 42123.0]]}, merges=("A4:A6",)),
         codes=("42207", "42110", "42123"), sheet="S"),
    Case("stray_value_in_ZZ50000.xlsx",
         handmade([("S", "visible", sheet_xml([*HEADER, ["Gier", "42207"]],
                                              cells={"ZZ50000": "x"}, dimension="A1:ZZ50000"))]),
         TerritoryError, r"a value beyond the table's 2 columns \(ZZ50000\)",
         ((50000, None, ["x"]),), seconds=3),
    Case("value_in_the_last_cell.xlsx",
         handmade([("S", "visible", sheet_xml([*HEADER, ["Gier", "42207"]],
                                              cells={"XFD1048576": 1}))]),
         ResourceLimitError, r"cell XFD1048576 holds 1: the sheet reaches row 1,048,576, more "
         r"than the limit of 200,000 \(`max_rows=200000`\)", seconds=2),
    Case("merged_range_to_the_last_cell.xlsx",
         handmade([("S", "visible", sheet_xml(
             {1: HEADER[0], 2: ["Gier", "42207"], 3: ["Ondaine", "42095"], 4: [None, "42316"]},
             merges=["A3:A1048576", "C1:XFD1048576"], dimension="A1:XFD1048576"))]),
         codes=("42207", "42095", "42316"), sheet="S", seconds=2),
    Case("whole_sheet_merged.xlsx",
         handmade([("S", "visible", sheet_xml([*HEADER, ["Gier", "42207"]],
                                              merges=["A1:XFD1048576"]))]),
         InputError, "'cpts' and 'cpts' are both read as 'cpts'", seconds=2),
    Case("dimension_that_lies.xlsx",
         handmade([("S", "visible", sheet_xml([*HEADER, ["Gier", "42207"]],
                                              dimension="A1:XFD1048576"))]),
         codes=("42207",), sheet="S", seconds=2),
    Case("decompresses_beyond_max_bytes.xlsx",
         handmade([("S", "visible", sheet_xml([*HEADER, ["Gier", "42207"]],
                                              padding=3_000_000))]),
         ResourceLimitError, r"decompresses to 2\.9 MiB .*, checked before reading it, more than "
         r"the limit of 1\.0 MiB \(`max_bytes=1048576`\)", options={"max_bytes": 2**20}),
    Case("more_cells_than_max_cells.xlsx",
         book({"S": [*HEADER, ["Gier", "42207"], ["Gier", "42110"], ["Gier", "42123"]]}),
         ResourceLimitError, r"more than the limit of 5 \(`max_cells=5`\)",
         options={"max_cells": 5}),
    Case("excel_error_value.xlsx",
         handmade([("S", "visible", sheet_xml([*HEADER, ["Gier", "#N/A"]]))]), TerritoryError,
         "'#N/A' is not a commune name", ((2, "insee", "#N/A"),)),
]

GEOJSON = [
    Case("nested_too_deeply.geojson", text("[" * 100_000 + "]" * 100_000), InputError,
         "the JSON is nested too deeply to be read"),
    Case("nan_coordinates.geojson",
         text(json.dumps({"type": "FeatureCollection", "features": [
             {"type": "Feature", "properties": {"cpts": "A"}, "geometry": POLYGON}]}).replace(
             "5.7,", "NaN,", 1)), InputError, "NaN is not a JSON value"),
    Case("infinite_coordinates.geojson",
         text(json.dumps({"type": "FeatureCollection", "features": [
             {"type": "Feature", "properties": {"cpts": "A"}, "geometry": POLYGON}]}).replace(
             "5.7,", "1e400,", 1)), InputError, "the number 1e400… is too large"),
    Case("number_of_5000_digits.geojson",
         text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
              '{"cpts": "A", "n": ' + "9" * 5000 + '}, "geometry": null}]}'), InputError,
         r"not valid JSON: Exceeds the limit \(4300 digits\)"),
    Case("unknown_declared_crs.geojson",
         collection(POLYGON, crs={"type": "name",
                                  "properties": {"name": "urn:ogc:def:crs:EPSG::99999"}}),
         InputError, "declares the coordinate reference system 'urn:ogc:def:crs:EPSG::99999', "
         "which is unknown"),
    Case("geometry_collection.geojson",
         collection({"type": "GeometryCollection", "geometries": [POLYGON]}), InputError,
         "the geometries are GeometryCollection; CPTS outlines must be polygons"),
    Case("lines.geojson", collection({"type": "LineString", "coordinates": SQUARE[0]}),
         InputError, "the geometries are LineString; CPTS outlines must be polygons"),
    Case("nested_cpts_name.geojson", collection(POLYGON, {"cpts": {"nom": "A"}}),
         TerritoryError, r"a nested value \(a JSON object or list\)",
         ((2, "cpts", {"nom": "A"}),)),
    Case("nested_list_of_names.geojson", collection(POLYGON, {"cpts": ["A", "B"]}),
         TerritoryError, r"a nested value \(a JSON object or list\)",
         ((2, "cpts", ["A", "B"]),)),
    Case("nested_values_in_records.json",
         text(json.dumps([{"cpts": "A", "insee": {"code": "42218"}}])), TerritoryError,
         r"a nested value \(a JSON object or list\)", ((2, "insee", {"code": "42218"}),)),
    Case("lambert93_read_as_degrees.geojson",
         collection({"type": "Polygon", "coordinates": [[[915000, 6455000], [916000, 6455000],
                                                         [916000, 6456000], [915000, 6455000]]]}),
         InputError, "the outlines are not in France in their declared CRS EPSG:4326"),
    Case("no_features.geojson", text('{"type": "FeatureCollection", "features": []}'),
         InputError, "the GeoJSON has no features"),
    Case("not_geojson.geojson", text('{"cpts": "A"}'), InputError,
         "not a GeoJSON FeatureCollection"),
    Case("truncated.geojson", text('{"type": "FeatureCollection", "features": ['), InputError,
         "not valid JSON: Expecting value at line 1"),
    Case("empty.geojson", raw(b"  \n"), InputError, "empty.geojson: the file is empty"),
    Case("bow_tie_outline.geojson",
         collection({"type": "Polygon", "coordinates": [[[5.70, 45.15], [5.80, 45.20],
                                                         [5.80, 45.15], [5.70, 45.20],
                                                         [5.70, 45.15]]]}),
         TerritoryError, r"invalid outline \(Self-intersection",
         ((2, "geometry", ...),)),
    Case("outline_with_a_date_typo.geojson", collection(POLYGON, {"cpts": "A",
                                                                  "date": "0202-01-01"}),
         TerritoryError, "is outside 2000-2099", ((2, "date", ...),)),
    Case("points_are_a_table.geojson",
         collection({"type": "Point", "coordinates": [4.39, 45.43]}, {"cpts": "A",
                                                                       "insee": "42218"}),
         codes=("42218",)),
    Case("records.json", text(json.dumps([{"cpts": "A", "insee": "42218"}])), codes=("42218",)),
]

GPKG = [
    Case("two_layers.gpkg", lambda p: gpkg({"cpts": _frame("A", _commune("38421")),
                                            "old": _frame("B", _commune("38309"))})(p),
         InputError, r"several layers \['cpts', 'old'\]: choose one with sheet='layer name' "
         r"\(command line: --sheet NAME\)"),
    Case("two_layers_one_named.gpkg", lambda p: gpkg({"cpts": _frame("A", _commune("38421")),
                                                      "old": _frame("B", _commune("38309"))})(p),
         codes=("38309",), options={"sheet": "old"}),
    Case("no_crs.gpkg", lambda p: gpkg({"cpts": _frame("A", _commune("38421"), crs=None)})(p),
         InputError, "the outlines have no coordinate reference system"),
    Case("unreadable_crs.gpkg", _unreadable_crs, InputError,
         "declares a coordinate reference system that cannot be read"),
    Case("nan_coordinates.gpkg",
         lambda p: gpkg({"cpts": gpd.GeoDataFrame(
             {"cpts": ["A", "B"]}, geometry=[_commune("38421"), _nan_polygon()], crs=4326)})(p),
         TerritoryError, r"the outline has coordinates that are not numbers \(NaN or infinite\)",
         ((3, "geometry", "MultiPolygon"),)),
    Case("garbage.gpkg", raw(b"garbage"), InputError, "cannot be read as a GeoPackage file"),
    Case("geometry_collection.gpkg",
         lambda p: gpkg({"cpts": _frame("A", shapely.GeometryCollection(
             [_commune("38421")]))})(p), InputError, "the geometries are GeometryCollection"),
    Case("not_in_france.gpkg",
         lambda p: gpkg({"cpts": _frame("A", shapely.box(100, 10, 101, 11))})(p), InputError,
         "the outlines are not in France"),
    Case("outline_covering_no_commune.gpkg",
         lambda p: gpkg({"cpts": _frame("Tiny", _commune("38309").centroid.buffer(0.001))})(p),
         TerritoryError, r"the outline of CPTS 'Tiny' covers no commune at 50% or more",
         ((2, "geometry", "Tiny"),)),
]

CASES = CSV + XLSX + GEOJSON + GPKG
IDS = [c.name for c in CASES]


def test_the_corpus_is_large_and_varied():
    assert len(CASES) >= 60 and len(set(IDS)) == len(IDS)
    kinds = {Path(c.name).suffix for c in CASES}
    assert kinds == {".csv", ".xlsx", ".geojson", ".json", ".gpkg"}
    assert sum(c.error is None for c in CASES) >= 20  # what planners type must be read
    # the README states the counts
    readme = (ROOT / "README.md").read_text("utf-8")
    assert (f"**{len(CASES)} territory\n  files** built in code ({len(CSV)} CSV, {len(XLSX)} "
            f"XLSX, {len(GEOJSON)} GeoJSON and JSON, {len(GPKG)} GeoPackage") in readme


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_inputs")
    paths = {}
    for case in CASES:
        path = folder / case.name
        case.build(path)
        paths[case.name] = path
    return paths


def _same(actual: object, expected: object) -> bool:
    return expected is ... or actual == expected


# ---------------------------------------------------------------------------------------------
# Through the API
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_read_territories(case: Case, corpus: dict[str, Path]):
    path = corpus[case.name]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if case.error is not None:
            with pytest.raises(case.error) as info:
                read_territories(path, **case.options)
        else:
            table = read_territories(path, **case.options)
    elapsed = time.perf_counter() - start
    assert elapsed < case.seconds, f"{case.name} took {elapsed:.1f} s"
    found = [str(w.message) for w in caught if issubclass(w.category, CptsGeoWarning)]
    others = [str(w.message) for w in caught if not issubclass(w.category, CptsGeoWarning)]
    assert others == []  # no RuntimeWarning or library chatter reaches the planner
    if case.error is not None:
        assert type(info.value) is case.error
        assert re.search(case.says, str(info.value), re.MULTILINE), str(info.value)
        if case.problems is not None:
            assert isinstance(info.value, TerritoryError)
            got = [(p.row, p.column, p.value) for p in info.value.problems]
            assert len(got) == len(case.problems), got[:5]
            for g, e in zip(got, case.problems, strict=True):
                assert g[:2] == e[:2] and _same(g[2], e[2]), (g, e)
        return
    assert tuple(table["insee"]) == case.codes
    if case.sheet is not None:
        assert table.attrs["sheet"] == case.sheet
    if case.says:
        assert any(re.search(case.says, m) for m in found), found
    else:
        assert found == []


# ---------------------------------------------------------------------------------------------
# Through the command line, in process
# ---------------------------------------------------------------------------------------------
def _flags(options: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        flags += [flag] if value is True else [flag, str(value)]
    return flags


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_command_line(case: Case, corpus: dict[str, Path], capsys: pytest.CaptureFixture[str]):
    argv = ["overlaps", "-t", str(corpus[case.name]), "--format", "csv", *_flags(case.options)]
    start = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "\x1b" not in out + err and "\u202e" not in out + err  # escaped for terminals
    if case.error is not None:
        assert elapsed < case.seconds + 1, f"{case.name} took {elapsed:.1f} s"
        assert code == 2 and out == ""
        lines = err.rstrip("\n").split("\n")
        assert lines[0].startswith("error: ")
        assert all(line.startswith("  ") for line in lines[1:]), lines[:3]
        if case.problems is not None:  # the first line says how many and what to do
            n = len(case.problems)
            assert re.fullmatch(
                rf"error: {n} problems? in {re.escape(case.name)}( \[sheet '[^']+'\])?: correct "
                r"(this cell|these cells) in the file and read it again", lines[0]), lines[0]
        pattern = case.says.removeprefix("^").removesuffix("$")
        assert re.search(pattern, err.replace("\n  ", "\n"), re.MULTILINE), err[:500]
    else:
        assert code == 0, err
        assert [line for line in err.splitlines() if not line.startswith("warning: ")] == []
        if case.says:
            assert re.search(case.says, err), err


# ---------------------------------------------------------------------------------------------
# A few real processes: exit status, one error block, no traceback
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["value_in_the_last_cell.xlsx", "nested_too_deeply.geojson",
                                  "status_en_cours_on_every_row.csv"])
def test_subprocess(name: str, corpus: dict[str, Path]):
    res = subprocess.run([sys.executable, "-m", "cpts_geo.cli", "coverage", "-t",
                          str(corpus[name])], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("error: ") and res.stderr.count("error:") == 1
    assert "Traceback" not in res.stderr
