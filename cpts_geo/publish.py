"""The static coverage site: build it in a temporary directory, then swap it in atomically.

Layout of a published site (``out`` is a symbolic link to the current release, so a web server
always sees a complete site, the previous one or the new one)::

    out -> out.releases/20261123T020000-1234/
        index.html            national, regional and departmental tables, national map, changes
        map.html              national map (Leaflet served from assets/, no CDN)
        summary.json          machine-readable figures, vintage and changes, for other tools
        state.json            what the next run compares itself with
        coverage_*.csv        downloads
        assets/               Leaflet, style sheet, table sorting script
        departements/42/      index.html, map.html, summary.json, CSV and GeoJSON downloads

A run that fails or is killed leaves the previous release untouched and ``out`` pointing to it;
a lock file refuses a second concurrent run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import geopandas as gpd
import jinja2
import pandas as pd

from . import _io
from .coverage import commune_coverage, coverage, find_gaps, find_overlaps, territory_geometries
from .errors import CptsGeoError

__all__ = ["PublishError", "PublishResult", "publish"]

log = logging.getLogger("cpts_geo.publish")
_KEEP_RELEASES = 3


class PublishError(CptsGeoError):
    """The site could not be published (another run holds the lock, the target is not a site)."""


@dataclass
class PublishResult:
    """What a publication produced.

    Attributes
    ----------
    out : Path
        The published path (a symbolic link to ``release``).
    release : Path
        The directory of this release.
    departements : list of str
        Départements that got a page.
    seconds : float
        Wall time of the run.
    changes : dict
        Changes since the previous publication (see ``summary.json``).
    timings : dict
        Seconds per step.
    """

    out: Path
    release: Path
    departements: list[str]
    seconds: float
    changes: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Locking and atomic swap
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    path = out.with_name(out.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise PublishError(
                    f"another publication of {out} is running (lock {path} held by pid {holder}); "
                    "try again when it has finished"
                ) from exc
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def _current_release(out: Path) -> Path | None:
    if out.is_symlink():
        target = out.resolve()
        return target if target.is_dir() else None
    if out.is_dir():
        return out
    return None


def _swap(out: Path, release: Path) -> None:
    """Point ``out`` at ``release`` atomically (rename of a symbolic link over the old one)."""
    if out.exists() and not out.is_symlink():
        if not (out / "state.json").is_file():
            raise PublishError(
                f"{out} exists and is not a cpts-geo site; choose another --out or remove it"
            )
        # first publication over a plain directory made by hand or an older version: move it
        # into the releases directory so that it stays reachable as the previous release
        # named like a release from the time it was last changed, so that pruning sees it
        when = datetime.fromtimestamp(out.stat().st_mtime, UTC)
        legacy = release.parent / f"{when:%Y%m%dT%H%M%S}-legacy"
        os.replace(out, legacy)
    tmp_link = out.with_name(f".{out.name}.{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(os.path.relpath(release, out.parent), tmp_link)
    os.replace(tmp_link, out)


def _prune(releases: Path, keep: int, current: Path) -> None:
    """Remove old releases (keeping ``keep``) and the builds of runs that were killed.

    Called with the lock held, so no other run is building.
    """
    done = sorted((p for p in releases.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)
    for old in done[:-keep]:
        if old.resolve() != current.resolve():
            shutil.rmtree(old, ignore_errors=True)
    for stale in releases.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def _state(territories: pd.DataFrame, cc: pd.DataFrame, dep_table: pd.DataFrame,
           attrs: dict[str, Any]) -> dict[str, Any]:
    cpts: dict[str, Any] = {}
    for cid, grp in territories.groupby("cpts_id", sort=True):
        status = grp["status"].dropna()
        dates = pd.Series(pd.to_datetime(grp["status_date"]) if "status_date" in grp
                          else [], dtype="datetime64[ns]").dropna()
        shares = {
            str(c): float(s) for c, s in zip(grp["insee"], grp["share"], strict=True) if s != 1
        } if "share" in grp else {}
        cpts[str(cid)] = {
            "cpts": str(grp["cpts"].iloc[0]),
            "status": None if status.empty else str(status.max()),
            "status_date": None if len(dates) == 0 else dates.max().date().isoformat(),
            "communes": sorted(grp["insee"].astype(str)),
            "shares": dict(sorted(shares.items())),
        }
    return {
        "vintage": {k: attrs.get(k) for k in ("cog_year", "population_year", "census_year")},
        "cpts": cpts,
        "covered": sorted(cc.loc[cc["covered"], "insee"]),
        "rates": {
            str(r.departement): (None if pd.isna(r.coverage_rate) else float(r.coverage_rate))
            for r in dep_table.itertuples()
        },
    }


def _changes(prev: dict[str, Any] | None, cur: dict[str, Any],
             names: dict[str, str]) -> dict[str, Any]:
    if prev is None:
        return {"first_publication": True}
    old, new = prev.get("cpts", {}), cur["cpts"]
    added = [{"cpts_id": k, "cpts": new[k]["cpts"]} for k in sorted(set(new) - set(old))]
    removed = [{"cpts_id": k, "cpts": old[k]["cpts"]} for k in sorted(set(old) - set(new))]
    changed = []
    for k in sorted(set(old) & set(new)):
        o, n = old[k], new[k]
        diff: dict[str, Any] = {"cpts_id": k, "cpts": n["cpts"]}
        for key in ("status", "status_date"):
            if o.get(key) != n.get(key):
                diff[key] = [o.get(key), n.get(key)]
        shares = {
            c: [o.get("shares", {}).get(c, 1.0), n.get("shares", {}).get(c, 1.0)]
            for c in set(o.get("shares", {})) | set(n.get("shares", {}))
            if c in o["communes"] and c in n["communes"]
            and o.get("shares", {}).get(c, 1.0) != n.get("shares", {}).get(c, 1.0)
        }
        if shares:
            diff["shares"] = dict(sorted(shares.items()))
        plus = sorted(set(n["communes"]) - set(o["communes"]))
        minus = sorted(set(o["communes"]) - set(n["communes"]))
        if plus:
            diff["communes_added"] = plus
        if minus:
            diff["communes_removed"] = minus
        if o.get("cpts") != n.get("cpts"):
            diff["renamed_from"] = o.get("cpts")
        if len(diff) > 2:
            changed.append(diff)
    was, now = set(prev.get("covered", [])), set(cur["covered"])
    entered = [{"insee": c, "nom": names.get(c)} for c in sorted(now - was)]
    left = [{"insee": c, "nom": names.get(c)} for c in sorted(was - now)]
    deltas = []
    for dep in sorted(set(prev.get("rates", {})) | set(cur["rates"])):
        a, b = prev.get("rates", {}).get(dep), cur["rates"].get(dep)
        if a != b and not (a is None and b is None):
            deltas.append({"departement": dep, "before": a, "after": b,
                           "delta": None if a is None or b is None else b - a})
    return {
        "first_publication": False,
        "previous_vintage": prev.get("vintage"),
        "vintage_changed": prev.get("vintage") != cur["vintage"],
        "cpts_added": added,
        "cpts_removed": removed,
        "cpts_changed": changed,
        "communes_entered_coverage": entered,
        "communes_left_coverage": left,
        "coverage_rate_deltas": deltas,
    }


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files("cpts_geo") / "templates")),
        autoescape=True,  # every text from an input file is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: (
        "" if v is None or pd.isna(v) else f"{100 * v:.1f}".replace(".", ",") + "\u202f%"
    )
    env.filters["num"] = _num
    env.filters["sortkey"] = lambda v: "" if v is None or pd.isna(v) else v
    return env


def _num(value: Any, digits: int = 0) -> str:
    if value is None or pd.isna(value):
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, int | float):
        text = f"{value:,.{digits}f}"
        return text.replace(",", "\u202f").replace(".", ",")
    return str(value)


def _write_table(df: pd.DataFrame, directory: Path, stem: str) -> list[str]:
    """CSV (and GeoJSON when there are geometries) downloads of ``df``; return file names."""
    names = []
    plain = pd.DataFrame(df.drop(columns="geometry", errors="ignore"))
    plain.to_csv(directory / f"{stem}.csv", index=False, lineterminator="\n")
    names.append(f"{stem}.csv")
    if isinstance(df, gpd.GeoDataFrame) and len(df) and df.geometry.notna().any():
        gdf = df[df.geometry.notna()].copy()
        for col in gdf.columns:
            if col != "geometry" and not pd.api.types.is_numeric_dtype(gdf[col]) \
                    and not pd.api.types.is_bool_dtype(gdf[col]):
                gdf[col] = gdf[col].astype(object).where(gdf[col].notna(), None).map(
                    lambda v: v if v is None else str(v))
        (directory / f"{stem}.geojson").write_text(
            gdf.to_json(drop_id=True, ensure_ascii=False, to_wgs84=True), encoding="utf-8"
        )
        names.append(f"{stem}.geojson")
    return names


def _copy_static(dest: Path) -> None:
    from .maps import write_assets

    dest.mkdir(parents=True, exist_ok=True)
    write_assets(dest)
    static = files("cpts_geo") / "templates" / "static"
    for item in static.iterdir():
        if item.is_file():
            (dest / item.name).write_bytes(item.read_bytes())


def _progress(iterable: Sequence[str], enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc="départements", unit="dép", file=sys.stderr)


@contextlib.contextmanager
def _step(name: str, timings: dict[str, float]) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 3)
    log.info("step %s done in %.2f s", name, timings[name])


# ---------------------------------------------------------------------------------------------
def publish(
    territories: str | os.PathLike[str] | pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    year: int | None = None,
    departements: Sequence[str] | None = None,
    progress: bool | None = None,
    keep: int = _KEEP_RELEASES,
) -> PublishResult:
    """Build the static coverage site and publish it atomically at ``out``.

    Parameters
    ----------
    territories : path or DataFrame
        CPTS territories (a file read with :func:`cpts_geo.read_territories`, or its result).
    out : path
        Where the site is published: a symbolic link to the current release, swapped
        atomically at the end of a successful run. Releases live next to it in
        ``<out>.releases/``; the ``keep`` newest are kept.
    year : int, optional
        Population year (default: the newest bundled).
    departements : sequence of str, optional
        Départements that get a page (default: every département with at least one CPTS
        commune). National and regional tables always cover all of France.
    progress : bool, optional
        Show a progress bar (default: when standard error is a terminal).
    keep : int
        Number of releases to keep (at least 2, so that the previous site stays available).

    Returns
    -------
    PublishResult
        Paths, départements, timings and changes since the previous publication.

    Raises
    ------
    PublishError
        If another run holds the lock, or ``out`` is an unrelated directory.
    cpts_geo.errors.InputError
        If the territories are invalid (nothing is published then).
    """
    from .maps import coverage_map, map_html
    from .reference import load_communes, normalize_departement
    from .territories import read_territories

    t_start = time.perf_counter()
    out = Path(out).absolute()
    releases = out.with_name(out.name + ".releases")
    timings: dict[str, float] = {}
    with _lock(out):
        releases.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=releases))
        try:
            with _step("read_territories", timings):
                if isinstance(territories, pd.DataFrame):
                    terr = territories.copy()
                    source_name = territories.attrs.get("source", "DataFrame")
                else:
                    terr = read_territories(territories)
                    source_name = Path(territories).name
            with _step("load_communes", timings):
                communes = load_communes(year=year)
                attrs = dict(communes.attrs)
            with _step("coverage", timings):
                nat = coverage(communes, terr, by="nation")
                reg = coverage(communes, terr, by="region")
                dep = coverage(communes, terr, by="departement")
                cpts = territory_geometries(communes, terr)
                cc = commune_coverage(communes, terr)
                overlaps = find_overlaps(communes, terr)
            with _step("national_map", timings):
                _copy_static(build / "assets")
                national = coverage_map(communes, terr, title="CPTS : couverture nationale")
                (build / "map.html").write_text(map_html(national, assets="assets/"),
                                                encoding="utf-8")
            touched = sorted(set(cc.loc[cc["covered"], "departement"]))
            pages = (touched if departements is None
                     else sorted({normalize_departement(d) for d in departements}))
            env = _env()
            names = dict(zip(cc["insee"], cc["nom"], strict=True))
            with _step("departements", timings):
                dep_rows = dep.set_index("departement")
                for code in _progress(pages, progress):
                    _department_page(
                        env, build, code, communes, terr, cc, cpts, overlaps,
                        dep_rows.loc[code], attrs, source_name, coverage_map, map_html,
                    )
            with _step("index", timings):
                previous = _current_release(out)
                prev_state = None
                if previous is not None and (previous / "state.json").is_file():
                    prev_state = json.loads((previous / "state.json").read_text("utf-8"))
                state = _state(terr, cc, dep, attrs)
                changes = _changes(prev_state, state, names)
                generated = datetime.now(UTC).replace(microsecond=0).isoformat()
                downloads = (_write_table(dep, build, "coverage_departements")
                             + _write_table(reg, build, "coverage_regions")
                             + _write_table(nat, build, "coverage_nation")
                             + _write_table(cpts, build, "cpts"))
                summary = {
                    "generated": generated,
                    "territories": source_name,
                    "vintage": state["vintage"],
                    "source": attrs.get("source"),
                    "nation": _io.records(nat),
                    "regions": _io.records(reg),
                    "departements": _io.records(dep),
                    "cpts": _io.records(cpts),
                    "pages": {c: f"departements/{c}/index.html" for c in pages},
                    "changes": changes,
                }
                _dump(build / "summary.json", summary)
                _dump(build / "state.json", state)
                (build / "index.html").write_text(
                    env.get_template("index.html").render(
                        title="Couverture de la population par les CPTS",
                        root="",
                        nat=nat.to_dict("records"), reg=reg.to_dict("records"),
                        dep=dep.to_dict("records"), pages=set(pages),
                        cpts=cpts.drop(columns="geometry").to_dict("records"),
                        overlaps=len(overlaps), changes=changes, attrs=attrs,
                        generated=generated, territories=source_name, downloads=downloads,
                    ),
                    encoding="utf-8",
                )
            with _step("swap", timings):
                release = releases / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
                for item in build.rglob("*"):
                    if item.is_file():
                        with open(item, "rb") as fh:
                            os.fsync(fh.fileno())
                os.chmod(build, _io.default_mode(directory=True))  # mkdtemp makes 0700
                os.replace(build, release)
                _swap(out, release)
                _prune(releases, max(keep, 2), release)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    seconds = round(time.perf_counter() - t_start, 2)
    log.info("published %s (%d département pages) in %.1f s", out, len(pages), seconds)
    return PublishResult(out=out, release=release, departements=pages, seconds=seconds,
                         changes=changes, timings=timings)


def _dump(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        _io.dump_json(obj, fh)


def _department_page(
    env: jinja2.Environment, build: Path, code: str, communes: gpd.GeoDataFrame,
    terr: pd.DataFrame, cc: gpd.GeoDataFrame, cpts: gpd.GeoDataFrame,
    overlaps: gpd.GeoDataFrame, row: pd.Series, attrs: dict[str, Any], source_name: str,
    coverage_map: Any, map_html: Any,
) -> None:
    d = build / "departements" / code
    d.mkdir(parents=True)
    local_cc = cc[cc["departement"] == code]
    local_cpts = cpts[cpts["departements"].str.split(",").map(lambda ds: code in ds)]
    local_over = overlaps[overlaps["departement"] == code]
    local_communes = communes[communes["departement"] == code]
    gaps = find_gaps(local_communes, terr)
    m = coverage_map(communes, terr, departement=code)
    (d / "map.html").write_text(map_html(m, assets="../../assets/"), encoding="utf-8")
    cov_row = row.to_frame().T.reset_index(names="departement")
    downloads = (
        _write_table(cov_row, d, "coverage")
        + _write_table(local_cpts, d, "cpts")
        + _write_table(gaps, d, "gaps")
        + _write_table(local_over, d, "overlaps")
        + _write_table(local_cc, d, "communes")
    )
    summary = {
        "departement": code,
        "nom": row["nom"],
        "vintage": {k: attrs.get(k) for k in ("cog_year", "population_year", "census_year")},
        "coverage": _io.records(cov_row)[0],
        "cpts": _io.records(local_cpts),
        "gaps": _io.records(gaps),
        "overlaps": _io.records(local_over),
        "downloads": downloads,
    }
    _dump(d / "summary.json", summary)
    (d / "index.html").write_text(
        env.get_template("departement.html").render(
            title=f"{row['nom']} ({code})", root="../../", code=code, row=row.to_dict(),
            cpts=local_cpts.drop(columns="geometry").to_dict("records"),
            gaps=gaps.drop(columns="geometry").to_dict("records"),
            overlaps=local_over.drop(columns="geometry").to_dict("records"),
            downloads=downloads, attrs=attrs, territories=source_name,
        ),
        encoding="utf-8",
    )
