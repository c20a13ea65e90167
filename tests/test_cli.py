"""The cpts-geo command line: outputs, formats, and one-line errors with exit status 2."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from helpers import ROOT, SEEDS

import cpts_geo
from cpts_geo.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_communes_csv_prints_the_table(capsys):
    code, out, _ = run(capsys, "communes", "--departement", "42", "--format", "csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out), dtype={"insee": str, "departement": str})
    assert len(table) == 320
    assert {"insee", "nom", "departement", "region", "epci", "population"} <= set(table.columns)
    assert table.set_index("insee").loc["42110", "nom"] == "L'Horme"


@pytest.mark.slow
def test_console_script_is_installed():
    exe = shutil.which("cpts-geo")
    if exe is None:
        pytest.skip("cpts-geo is not on PATH (package not installed)")
    res = subprocess.run([exe, "communes", "--departement", "42", "--format", "csv"],
                         capture_output=True, text=True, check=True)
    assert len(res.stdout.strip().splitlines()) == 321


def test_coverage_json_is_a_list_of_records(capsys):
    code, out, _ = run(capsys, "coverage", "--territories", str(SEEDS), "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert isinstance(rows, list)
    by_dep = {r["departement"]: r for r in rows}
    assert set(by_dep) == {"38", "42", "69"}
    for r in rows:
        assert r["n_covered_communes"] + r["n_gap_communes"] == r["n_communes"]
        assert 0 <= r["coverage_rate"] <= 1
    assert by_dep["42"]["n_covered_communes"] == 25


def test_coverage_by_cpts_and_departement_filter(capsys):
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "--by", "cpts",
                       "--departement", "69", "--format", "json")
    assert code == 0
    names = {r["cpts"]: r for r in json.loads(out)}
    assert set(names) == {"Vallée du Gier", "Vénissieux"}  # both have communes in the Rhône
    assert names["Vallée du Gier"]["departements"] == "42,69"
    assert names["Vallée du Gier"]["n_communes"] == 27


def test_region_and_nation_are_computed_on_the_whole_area(capsys):
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "--by", "region", "--format",
                       "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["region"] for r in rows] == ["84"]
    assert rows[0]["population"] == cpts_geo.load_regions("84")["population"].iloc[0]
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "--by", "nation", "--format",
                       "json")
    nation = json.loads(out)[0]
    assert nation["population"] == cpts_geo.load_communes()["population"].sum()
    assert nation["n_communes"] == 34875


def test_coverage_table_and_output_file(capsys, tmp_path):
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "--by", "nation")
    assert code == 0 and "France" in out and "coverage_rate" in out
    target = tmp_path / "out" / "cov.csv"
    target.parent.mkdir()
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "--format", "csv", "-o",
                       str(target))
    assert code == 0 and out == ""
    assert len(pd.read_csv(target)) == 3
    # no temporary left; the sidecar holds the vintage
    assert sorted(p.name for p in target.parent.iterdir()) == ["cov.csv",
                                                               "cov.csv-metadata.json"]
    assert target.stat().st_mode & 0o044  # readable by others, as a plain write would be
    code, _, err = run(capsys, "coverage", "-t", str(SEEDS), "-o", str(tmp_path))
    assert code == 2 and err.startswith(f"error: {tmp_path}: is a directory")


def test_gaps_and_overlaps(capsys, tmp_path):
    code, out, _ = run(capsys, "gaps", "-t", str(SEEDS), "-d", "38", "--format", "json")
    assert code == 0
    zones = json.loads(out)
    assert sum(z["n_communes"] for z in zones) == 512 - 5
    territories = tmp_path / "t.csv"
    territories.write_text("cpts,commune\nA,38421\nB,38421\nB,38158\n", encoding="utf-8")
    code, out, _ = run(capsys, "overlaps", "-t", str(territories), "--format", "json")
    assert code == 0
    assert [(r["insee"], r["cpts"]) for r in json.loads(out)] == [("38421", "A; B")]
    code, out, _ = run(capsys, "outlines", "-t", str(territories), "--format", "geojson")
    assert code == 0
    features = json.loads(out)["features"]
    assert {f["properties"]["cpts"] for f in features} == {"A", "B"}


def test_bad_input_exits_2_with_one_error_block_naming_file_row_value(capsys, tmp_path):
    bad = tmp_path / "cpts.csv"
    bad.write_text("cpts,commune\nA,42218\nA,42999\n" + "A,42218,x\n" * 3, encoding="utf-8")
    code, out, err = run(capsys, "coverage", "-t", str(bad))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0] == ("error: 4 problems in cpts.csv: correct these cells in the file and read "
                        "it again")
    assert lines[1].startswith("  cpts.csv, row 3, column 'commune': unknown INSEE code 42999")
    # the same mistake on three rows is one line
    assert lines[2].startswith("  cpts.csv, rows 4-6: the row has 3 cells but the header only 2")
    assert len(lines) == 3 and sum(line.startswith("error:") for line in lines) == 1
    assert "Traceback" not in err


def test_missing_file_and_bad_departement(capsys, tmp_path):
    code, _, err = run(capsys, "coverage", "-t", str(tmp_path / "nope.csv"))
    assert code == 2 and err.startswith("error: ") and "nope.csv" in err
    code, _, err = run(capsys, "communes", "--departement", "420")
    assert code == 2 and "'420' is not a département" in err


@pytest.mark.slow
def test_subprocess_error_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("cpts,commune\nA,12\n", encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "cpts_geo.cli", "coverage", "-t", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: 1 problem in bad.csv: correct this cell")
    assert "bad.csv" in res.stderr and "row 2" in res.stderr and "'12'" in res.stderr


def test_reconcile_compares_the_areas_listed_completely(capsys):
    code, out, _ = run(capsys, "reconcile", "-t", str(ROOT / "data" / "territories"),
                       "--complete", "region:93", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    compared = {(r["scope"], r["metric"], r["claim_date"]) for r in rows if r["compared"]}
    assert ("93", "coverage_rate", "2024-03") in compared
    assert not any(r["compared"] for r in rows if r["scope"] == "42")
    code, _, err = run(capsys, "reconcile", "-t", str(SEEDS), "--complete", "canton:12")
    assert code == 2 and "--complete 'canton:12'" in err


def test_funding_json_gives_each_cpts_its_class_amounts_and_sources(capsys, tmp_path):
    code, out, _ = run(capsys, "funding", "-t", str(SEEDS), "--departement", "38",
                       "--format", "json")
    assert code == 0
    [seg] = json.loads(out)  # only the CPTS of the Isère
    assert (seg["cpts"], seg["size_class"], seg["rules_version"]) == (
        "Sud-Est Grenoblois", 2, "aci-2019")
    assert (seg["fonctionnement_eur"], seg["max_annual_total_eur"]) == (60_000, 287_000)
    assert seg["mission_parcours_eur"] is None  # not established: absent, not guessed
    assert "https://medecine-generale.lequotidiendumedecin.fr/" in seg["sources"]
    rules = tmp_path / "rules.json"
    rules.write_text('{"schema_version": 2}', encoding="utf-8")
    code, _, err = run(capsys, "funding", "-t", str(SEEDS), "--rules", str(rules))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: ") and "rules.json: not a cpts_geo ACI rules file" in err


def _dated_file(tmp_path):
    """A small dated file of real communes (two of the Loire, one of the Rhône), one undated."""
    path = tmp_path / "dated.csv"
    path.write_text(
        "cpts,insee,share,status_date\n"
        "A,42218,,09/07/2020\n"
        "A,42207,,09/07/2020\n"
        "B,42110,50 %,2023-12-07\n"
        "B,69259,,2023-12-07\n"
        "C,69119,,\n", encoding="utf-8")
    return path


def test_timeline_json_prints_the_figures_recomputed_from_the_raw_files(capsys, tmp_path,
                                                                         raw_npm):
    code, out, err = run(capsys, "timeline", "-t", str(_dated_file(tmp_path)), "--format",
                         "json")
    assert code == 0
    assert err.splitlines() == ["warning: 1 CPTS have no status_date and are left out of the "
                                "timeline (their date is not guessed): C"]
    rows = json.loads(out)
    assert [list(r) for r in rows[:1]] == [["departement", "nom", "date", "population",
                                            "covered_population", "coverage_rate", "delta",
                                            "n_cpts", "cpts_entered"]]
    raw = {c["code"]: (c["departement"], c.get("population") or 0) for c in raw_npm("6.0.0")
           if c["type"] == "commune-actuelle"}

    def total(dep):
        return sum(p for d, p in raw.values() if d == dep)

    a = raw["42218"][1] + raw["42207"][1]
    expected = [
        ("42", "2020-07-09", a, "A"),
        ("42", "2023-12-07", a + 0.5 * raw["42110"][1], "B"),
        ("69", "2023-12-07", raw["69259"][1], "B"),
    ]
    assert [(r["departement"], r["date"], r["cpts_entered"]) for r in rows] == [
        (d, day, who) for d, day, _, who in expected]
    for r, (dep, _, covered, _) in zip(rows, expected, strict=True):
        assert r["population"] == total(dep)
        assert r["covered_population"] == pytest.approx(covered, abs=0.05)
        assert r["coverage_rate"] == pytest.approx(covered / total(dep))
    code, out, err = run(capsys, "timeline", "-t", str(_dated_file(tmp_path)), "-d", "69",
                         "--format", "csv")
    assert "no status_date" in err
    assert code == 0 and out.splitlines()[1].startswith("69,Rhône,2023-12-07,")
    assert len(out.splitlines()) == 2


def _without_gier(tmp_path):
    seeds = pd.read_csv(SEEDS, dtype=str, keep_default_na=False)
    path = tmp_path / "sans_gier.csv"
    seeds[seeds["cpts"] != "Vallée du Gier"].to_csv(path, index=False)
    return path


def test_compare_a_file_with_itself_reports_nothing(capsys):
    code, out, _ = run(capsys, "compare", str(SEEDS), str(SEEDS), "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert set(result) >= {"cpts", "communes", "areas"}
    assert {r["change"] for r in result["cpts"]} == {"unchanged"}
    assert result["communes"] == []
    assert [a["area"] for a in result["areas"]] == ["38", "42", "69"]
    assert all(a["delta"] == 0 and a["before_rate"] == a["after_rate"] for a in result["areas"])


def test_compare_removing_one_cpts_reports_it_and_its_population_in_each_departement(
        capsys, tmp_path, raw_npm):
    code, out, _ = run(capsys, "compare", str(SEEDS), str(_without_gier(tmp_path)),
                       "--format", "json")
    assert code == 0
    result = json.loads(out)
    changed = [(r["cpts"], r["change"]) for r in result["cpts"] if r["change"] != "unchanged"]
    assert changed == [("Vallée du Gier", "dissolved")]
    seeds = pd.read_csv(SEEDS, dtype=str, keep_default_na=False)
    gier = seeds.loc[seeds["cpts"] == "Vallée du Gier", "insee"]
    assert sorted(r["insee"] for r in result["communes"]) == sorted(gier)
    assert {r["change"] for r in result["communes"]} == {"left"}
    raw = {c["code"]: (c["departement"], c.get("population") or 0) for c in raw_npm("6.0.0")
           if c["type"] == "commune-actuelle"}
    areas = {a["area"]: a for a in result["areas"]}
    for dep in ("42", "69"):  # the delta of its population in each département it touches
        lost = sum(raw[c][1] for c in gier if raw[c][0] == dep)
        total = sum(p for d, p in raw.values() if d == dep)
        assert areas[dep]["delta"] == pytest.approx(-lost / total)
        assert areas[dep]["before_covered_population"] - areas[dep][
            "after_covered_population"] == pytest.approx(lost)
    assert areas["38"]["delta"] == 0


@pytest.mark.slow
def test_compare_table_csv_and_departement_filter(capsys, tmp_path):
    after = _without_gier(tmp_path)
    code, out, _ = run(capsys, "compare", str(SEEDS), str(after), "-d", "Rhône")
    assert code == 0
    assert out.startswith("CPTS\n") and "Vallée du Gier" in out and "dissolved" in out
    assert "Sud-Est Grenoblois" not in out  # only the Rhône's CPTS, communes and rate
    assert "Longes" in out and "Le Bessat" not in out
    target = tmp_path / "diff.csv"
    code, _, _ = run(capsys, "compare", str(SEEDS), str(after), "--format", "csv", "-o",
                     str(target))
    table = pd.read_csv(target, dtype=str)
    assert list(table.columns[:4]) == ["section", "key", "nom", "change"]
    assert table["section"].value_counts().to_dict() == {"communes": 27, "cpts": 3, "areas": 3}
    code, _, err = run(capsys, "compare", str(SEEDS), str(tmp_path / "absent.csv"))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
@pytest.mark.parametrize(
    ("setup", "out", "message"),
    [
        (lambda t: (t / "notes.txt").write_text("x"), "notes.txt/site",
         r"notes.txt is a file, not a folder; choose another --out"),
        (lambda t: (t / "notes.txt").write_text("x"), "notes.txt/a/b/site",
         r"notes.txt is a file, not a folder"),
        (lambda t: (t / "site").write_text("x"), "site",
         r"site: it is a file, not a site folder"),
        (lambda t: (t / "site.releases").write_text("x"), "site",
         r"site.releases, where its releases are kept, is a file, not a folder"),
        (lambda t: (t / "site").mkdir(), "site", r"site exists and is not a cpts-geo site"),
    ],
    ids=["out-under-a-file", "out-deep-under-a-file", "out-is-a-file", "releases-is-a-file",
         "out-is-another-folder"],
)
def test_publish_targets_that_cannot_hold_a_site(capsys, tmp_path, setup, out, message):
    setup(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = run(capsys, "publish", "-t", str(SEEDS), "--out", str(tmp_path / out))
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # refused before writing


def test_output_under_a_file_is_one_error_line(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    for target in ("notes.txt/cov.csv", "notes.txt/sub/cov.csv"):
        code, out, err = run(capsys, "communes", "-d", "90", "--format", "csv", "-o",
                             str(tmp_path / target))
        assert code == 2 and out == "" and err.count("\n") == 1
        assert err == (f"error: {tmp_path / 'notes.txt'}: a parent of the output is a file, "
                       "not a folder\n")


def test_communes_refresh_needs_an_online_source(capsys):
    code, _, err = run(capsys, "communes", "-d", "90", "--refresh")
    assert code == 2 and "`refresh` and `max_age` only apply to the online sources" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"cpts-geo {cpts_geo.__version__}\n"
    project = (ROOT / "pyproject.toml").read_text("utf-8")
    assert f'\nversion = "{cpts_geo.__version__}"\n' in project


def test_every_command_help_has_a_description_and_an_example():
    import argparse

    from cpts_geo.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 11
    for name, command in sub.choices.items():
        text = command.format_help()
        _, _, rest = text.partition("\n\n")
        description = rest.split("\n\n")[0]
        assert len(description.split()) >= 10, (name, description)
        example = text.split("example:\n")[1].strip()
        assert example.startswith(f"cpts-geo {name} "), (name, example)
        # the example parses (its files need not exist)
        parsed = parser.parse_args(example.split()[1:])
        assert parsed.command == name


def test_output_format_from_the_extension(capsys, tmp_path):
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "-o", str(tmp_path / "cov.csv"))
    assert code == 0 and out == ""
    table = pd.read_csv(tmp_path / "cov.csv", dtype={"departement": str})
    assert table["departement"].tolist() == ["38", "42", "69"]
    assert table.loc[1, "covered_population"] == 95453
    side = json.loads((tmp_path / "cov.csv-metadata.json").read_text("utf-8"))
    assert side["url"] == "cov.csv"
    assert {k: side["cpts_geo"][k] for k in ("cog_year", "population_year", "census_year",
                                             "territories")} == {
        "cog_year": 2026, "population_year": 2026, "census_year": 2023,
        "territories": "cpts_seeds.csv"}
    assert "@etalab/decoupage-administratif 6.0.0" in side["dc:source"]
    code, _, _ = run(capsys, "coverage", "-t", str(SEEDS), "-o", str(tmp_path / "cov.JSON"))
    assert code == 0 and len(json.loads((tmp_path / "cov.JSON").read_text("utf-8"))) == 3
    # --format says otherwise: it wins (and a JSON file gets no CSV sidecar)
    code, _, _ = run(capsys, "coverage", "-t", str(SEEDS), "--format", "json", "-o",
                     str(tmp_path / "rates.csv"))
    assert code == 0 and json.loads((tmp_path / "rates.csv").read_text("utf-8"))[0][
        "departement"] == "38"
    assert not (tmp_path / "rates.csv-metadata.json").exists()
    code, _, _ = run(capsys, "gaps", "-t", str(SEEDS), "-d", "42", "-o",
                     str(tmp_path / "gaps.geojson"))
    assert code == 0
    assert json.loads((tmp_path / "gaps.geojson").read_text("utf-8"))["type"] == \
        "FeatureCollection"
    before = sorted(p.name for p in tmp_path.iterdir())
    for name in ("cov.xls", "cov", "cov.geojson"):  # coverage has no geometry
        code, out, err = run(capsys, "coverage", "-t", str(SEEDS), "-o", str(tmp_path / name))
        assert code == 2 and out == "" and err.count("\n") == 1
        assert err.startswith(f"error: --output {tmp_path / name}: cannot tell the format "
                              "from the extension")
        assert "give --format (table, csv, json)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_missing_output_folder_is_an_error_not_created(capsys, tmp_path):
    target = tmp_path / "missing" / "cov.csv"
    code, out, err = run(capsys, "coverage", "-t", str(SEEDS), "-o", str(target))
    assert code == 2 and out == ""
    assert err == (f"error: {tmp_path / 'missing'}: the output folder does not exist (create "
                   "it first)\n")
    assert not (tmp_path / "missing").exists()


def test_table_footer_gives_the_vintage_and_the_sources(capsys):
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "-d", "42")
    assert code == 0
    table, footer = out.rstrip("\n").rsplit("\n\n", 1)
    assert "Loire" in table and "0.123303" in table
    assert footer.startswith("COG 2026 · populations in force in 2026 (census 2023) · "
                             "communes: cpts_geo bundle")
    assert footer.endswith(f"· territories: cpts_seeds.csv · cpts-geo {cpts_geo.__version__}")
    code, out, _ = run(capsys, "compare", str(SEEDS), str(SEEDS), "-d", "42")
    assert out.rstrip().splitlines()[-1].startswith("COG 2026 · populations in force in 2026")
    assert "territories: cpts_seeds.csv, cpts_seeds.csv" in out


def test_json_envelope_carries_the_vintage(capsys):
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "--format", "json",
                       "--json-envelope", "--as-of", "2021-01-01")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"meta", "records"}
    assert doc["meta"]["population_year"] == 2026 and doc["meta"]["as_of"] == "2021-01-01"
    assert doc["meta"]["territories"] == "cpts_seeds.csv"
    by_dep = {r["departement"]: r for r in doc["records"]}
    assert by_dep["42"]["covered_population"] == 0  # the Vallée du Gier signed in 2023
    assert by_dep["38"]["covered_population"] == 58578
    code, out, _ = run(capsys, "compare", str(SEEDS), str(SEEDS), "--format", "json",
                       "--json-envelope")
    assert json.loads(out)["meta"]["census_year"] == 2023


def test_info_prints_a_summary_and_the_manifest_with_json(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0 and len(out.splitlines()) <= 10
    assert "COG 2026: 34,875 communes and 45 arrondissements" in out
    assert "in force in 2022-2026 (default 2026: census 2023)" in out
    assert "56 holes covered by no commune (606.5 km²)" in out
    assert out.rstrip().endswith("cpts-geo info --json")
    code, out, _ = run(capsys, "info", "--json")
    manifest = json.loads(out)
    assert manifest["counts"]["communes"] == 34875 and "holes" not in manifest["report"]


def test_publish_stale_after_must_be_positive(capsys, tmp_path):
    code, out, err = run(capsys, "publish", "-t", str(SEEDS), "--out", str(tmp_path / "site"),
                         "--stale-after", "0")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--stale-after 0.0: expected a number of hours above 0" in err
    assert list(tmp_path.iterdir()) == []


def test_publish_jobs_must_be_positive(capsys, tmp_path):
    code, out, err = run(capsys, "publish", "-t", str(SEEDS), "--out", str(tmp_path / "site"),
                         "--jobs", "0")
    assert code == 2 and out == ""
    assert "`jobs` was 0; expected a whole number of processes" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_publish_with_two_jobs(capsys, tmp_path):
    code, _, err = run(capsys, "publish", "-t", str(SEEDS), "--out", str(tmp_path / "site"),
                       "-d", "42", "-d", "38", "--jobs", "2", "--no-progress")
    assert code == 0, err
    for dep in ("42", "38"):
        assert (tmp_path / "site" / "departements" / dep / "map.html").is_file()


@pytest.mark.slow
def test_publish_keeps_its_releases_and_lock_in_the_state_dir(capsys, tmp_path):
    www, state = tmp_path / "www", tmp_path / "var" / "cpts"
    www.mkdir()
    for _ in range(2):  # pruning to 3 releases: tests/publishing/test_release.py
        code, _, err = run(capsys, "publish", "-t", str(SEEDS), "--out", str(www / "cpts"),
                           "-d", "42", "--state-dir", str(state), "--no-progress")
        assert code == 0, err
    assert [p.name for p in www.iterdir()] == ["cpts"] and (www / "cpts").is_symlink()
    assert (www / "cpts" / "departements" / "42" / "index.html").is_file()
    releases = [p for p in state.iterdir() if p.is_dir()]
    assert len(releases) == 2  # the current site and the one before it
    assert (www / "cpts").resolve() == max(releases, key=lambda p: p.name).resolve()
    assert sorted(p.name for p in state.iterdir() if p.is_file()) == ["publish.lock",
                                                                       "target.txt"]


def test_propose_writes_a_territory_file(capsys, tmp_path):
    out, cands = tmp_path / "propositions.csv", tmp_path / "candidates.csv"
    code, stdout, err = run(capsys, "propose", "--territories", str(SEEDS), "--departement",
                            "38", "--target", "20", "--output", str(out),
                            "--candidates", str(cands))
    assert code == 0 and stdout == ""
    assert "20 CPTS in all in Isère (38): 1 existing" in err and "target 20 reached" in err
    back = cpts_geo.read_territories(out)
    assert back["cpts_id"].nunique() == 19 and (back["status"] == "proposition").all()
    assert back["source"].str.startswith("proposition drawn by cpts_geo").all()
    table = pd.read_csv(cands)
    assert len(table) == 19 and {"population", "size_class", "reason"} <= set(table.columns)
    both = cpts_geo.read_territories([SEEDS, out])
    isere = cpts_geo.load_communes("38")
    assert cpts_geo.coverage(isere, both)["coverage_rate"].tolist() == [1.0]
    # standard output, JSON
    code, stdout, _ = run(capsys, "propose", "-d", "2A", "--target", "3", "--format", "json")
    assert code == 0 and len({r["cpts_id"] for r in json.loads(stdout)}) == 3


def test_propose_nothing_to_propose_writes_no_file(capsys, tmp_path):
    out = tmp_path / "p.csv"
    code, _, err = run(capsys, "propose", "-t", str(ROOT / "data" / "territories"), "-d", "05",
                       "-o", str(out))
    assert code == 0 and not out.exists()
    assert "every commune of Hautes-Alpes (05) is covered: nothing to propose" in err
    assert f"nothing written to {out}" in err


def test_propose_bad_input_exits_2_with_one_line(capsys, tmp_path):
    for argv in (["-d", "38", "--target", "0"], ["-d", "38", "--mountain", "38999"],
                 ["-d", "38", "--min-population", "200000"]):
        code, out, err = run(capsys, "propose", *argv, "-o", str(tmp_path / "x.csv"))
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not (tmp_path / "x.csv").exists()
# ---------------------------------------------------------------------------------------------
# Reading options, départements by name, safe output (issues 12 and 14)
# ---------------------------------------------------------------------------------------------
def _workbook(path, hidden_old=True):
    import openpyxl

    book = openpyxl.Workbook()
    old = book.active
    old.title = "Ancienne liste"
    old.append(["cpts", "insee"])
    old.append(["Gier 2019", "42218"])
    if hidden_old:
        old.sheet_state = "hidden"
    new = book.create_sheet("CPTS 2024")
    new.append(["cpts", "insee"])
    new.append(["Gier", "42207"])
    book.active = 1
    book.save(path)
    return path


def test_sheet_option_reads_a_named_sheet(capsys, tmp_path):
    path = _workbook(tmp_path / "cpts.xlsx")
    code, out, _ = run(capsys, "overlaps", "-t", str(path), "--format", "json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(capsys, "coverage", "-t", str(path), "--by", "cpts", "--format", "json")
    assert [r["cpts"] for r in json.loads(out)] == ["Gier"]  # the visible, active sheet
    code, out, _ = run(capsys, "coverage", "-t", str(path), "--by", "cpts", "--format", "json",
                       "--sheet", "Ancienne liste")
    assert code == 0 and [r["cpts"] for r in json.loads(out)] == ["Gier 2019"]
    code, out, _ = run(capsys, "coverage", "-t", str(path), "--by", "cpts", "--format", "json",
                       "--sheet", "0")
    assert code == 0 and [r["cpts"] for r in json.loads(out)] == ["Gier 2019"]  # a position
    code, _, err = run(capsys, "coverage", "-t", str(path), "--sheet", "Nope")
    assert code == 2 and err.startswith("error: cpts.xlsx: no sheet named 'Nope'")
    # publish reads with the same options (and stops before building on a bad one)
    code, _, err = run(capsys, "publish", "-t", str(path), "--sheet", "Nope", "--out",
                       str(tmp_path / "site"), "--no-progress")
    assert code == 2 and "no sheet named 'Nope'" in err and not (tmp_path / "site").exists()


def test_trust_codes_flag(capsys, tmp_path):
    path = tmp_path / "cpts.csv"
    path.write_text("cpts,insee,commune\nSEG,38400,Saint-Martin-d'Hères\n", encoding="utf-8")
    code, out, err = run(capsys, "coverage", "-t", str(path), "--format", "json")
    assert code == 2 and out == ""
    assert err.splitlines()[1].startswith("  cpts.csv, row 2, column 'insee': '38400' is the "
                                          "INSEE code of Saint-Jean-de-Moirans (38)")
    code, out, err = run(capsys, "coverage", "-t", str(path), "--by", "cpts", "--format", "json",
                         "--trust-codes")
    assert code == 0 and json.loads(out)[0]["n_communes"] == 1
    assert err.startswith("warning: cpts.csv: 1 row(s) give a commune code and a name that "
                          "disagree; the code is used")


def test_limits_on_the_command_line(capsys, tmp_path):
    path = tmp_path / "cpts.csv"
    path.write_text("cpts,insee\n" + "A,42218\n" * 20, encoding="utf-8")
    code, _, err = run(capsys, "overlaps", "-t", str(path), "--max-rows", "5")
    assert code == 2 and "(`max_rows=5`)" in err and "--max-rows on the command line" in err
    code, _, err = run(capsys, "overlaps", "-t", str(path), "--max-bytes", "100")
    assert code == 2 and "(`max_bytes=100`)" in err


def test_departements_by_name(capsys):
    code, out, _ = run(capsys, "communes", "-d", "Loire", "--format", "csv")
    assert code == 0 and len(out.strip().splitlines()) == 321
    code, out, _ = run(capsys, "coverage", "-t", str(SEEDS), "-d", "Isère", "--format", "json")
    assert code == 0 and [r["departement"] for r in json.loads(out)] == ["38"]
    assert len(cpts_geo.load_communes("Loire")) == 320


def test_control_characters_from_names_are_escaped(capsys, tmp_path):
    path = tmp_path / "cpts.csv"
    path.write_text("cpts,insee\n\"Gier\x1b[31m\u202e\",42207\n", encoding="utf-8")
    for fmt in ("table", "csv"):
        code, out, _ = run(capsys, "coverage", "-t", str(path), "--by", "cpts", "--format", fmt)
        assert code == 0
        assert "\x1b" not in out and "\u202e" not in out
        assert "Gier\\x1b[31m\\u202e" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("cpts,commune\nA,\"Saint\x1b[2J\x07-Chamond\"\n", encoding="utf-8")
    code, _, err = run(capsys, "coverage", "-t", str(bad))
    assert code == 2 and "\x1b" not in err and "\x07" not in err
    assert "'Saint\\x1b[2J\\x07-Chamond' is not a commune name" in err


def test_output_under_an_existing_file_exits_2(capsys, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x", encoding="utf-8")
    code, out, err = run(capsys, "coverage", "-t", str(SEEDS), "-o", str(blocker / "out.csv"))
    assert code == 2 and out == "" and err.startswith("error: ") and "Traceback" not in err
