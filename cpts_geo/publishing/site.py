"""The static coverage site: built in a temporary directory, then swapped in atomically.

Layout of a published site (``out`` is a symbolic link to the current release, so a web server
always sees a complete site, the previous one or the new one)::

    out -> out.releases/20261123T020000.123456-1234/   (the state folder: --state-dir)
        index.html            national, regional and departmental tables, the CPTS, national
                              map, published figures, changes
        communes.html         "Quelle CPTS couvre ma commune ?" (search in communes-index.js)
        map.html              national map (Leaflet served from assets/, no CDN)
        summary.json          machine-readable figures, vintage and changes, for other tools
        state.json            the snapshot the next run compares itself with
        coverage_*.csv ...    downloads for programs (with -metadata.json sidecars) and for
                              Excel (*_excel.csv, couverture_cpts_france.xlsx)
        assets/               Leaflet, style sheet, table sorting and site scripts
        departements/42/      index.html (with its coverage over time as inline SVG), map.html,
                              summary.json, downloads (timeline.csv..., couverture_cpts_42.xlsx)
        cpts/vallee-du-gier/  index.html (communes, neighbours, its département's map opened on
                              it), communes.csv, communes_excel.csv

Every page gives its publication date in French; with ``stale_after``, a page read after its
schedule says that the site was not updated as planned.

A run that fails or is killed, at any step, leaves ``out`` resolving to a complete site (the
previous one, or the new one once it is switched in); the next run clears what it left. The
first publication over a plain directory exchanges it with the link in one step; where that is
impossible (no symbolic links, no atomic exchange), the publication is refused before building
(see :mod:`cpts_geo.publishing.release`). A lock file refuses a second concurrent run. The inputs
are validated and prepared once for the whole site.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from ..analysis.aci import default_rules
from ..analysis.changes import check_snapshot, diff, snapshot
from ..analysis.claims import claims_table, complete_areas
from ..analysis.inputs import prepare
from ..errors import InputError, public, warn
from ..geography import departements as all_departements
from ..geography import normalize_departements
from ..io.readers import read_territories
from ..io.writers import jsonable, records, table_meta
from ..maps.styles import js, size_classes_text
from ..sources.bundle import load_published_figures
from ..sources.loaders import load_communes
from .pages import (
    ZONE_NAMES_SHOWN,
    CptsPage,
    cpts_pages,
    cpts_title,
    departement_page,
    search_index,
    site_data,
)
from .release import STATE_FILE, check_target, current_release, install, lock, prepare_target
from .render import (
    Table,
    about_rows,
    environment,
    read_json,
    write_downloads,
    write_json,
)
from .workers import run_pages

__all__ = ["PublishResult", "publish"]

log = logging.getLogger("cpts_geo.publish")
KEEP_RELEASES = 3


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
        Changes since the previous publication (see :func:`cpts_geo.analysis.changes.diff`),
        ``{"first_publication": True}`` for the first one.
    timings : dict
        Seconds per step.
    """

    out: Path
    release: Path
    departements: list[str]
    seconds: float
    changes: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def _step(name: str, timings: dict[str, float]) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 3)
    log.info("step %s done in %.2f s", name, timings[name])


def _progress_bar(total: int, enabled: bool | None) -> Any:
    """A progress bar of the département pages, updated as each is done; None when not shown."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="départements", unit="dép", file=sys.stderr)


def _copy_static(dest: Path) -> None:
    from ..maps.assets import write_assets

    dest.mkdir(parents=True, exist_ok=True)
    write_assets(dest)
    static = files("cpts_geo") / "templates" / "static"
    for item in static.iterdir():
        if item.is_file():
            (dest / item.name).write_bytes(item.read_bytes())


def _previous_state(out: Path) -> dict[str, Any] | None:
    """The snapshot of the current release, None if there is none or it is damaged (warned).

    A damaged state (truncated, not JSON, not UTF-8, nested too deeply, a foreign or older
    snapshot, a directory, missing from a published release) never stops a publication: the
    change report starts again from this one, with a warning naming the file.
    """
    previous = current_release(out)
    if previous is None:
        return None
    path = previous / STATE_FILE
    try:
        if not path.is_file():
            raise InputError("it is missing" if not os.path.lexists(path)
                             else "it is not a file")
        return check_snapshot(read_json(path))
    except (ValueError, InputError, OSError, RecursionError) as exc:
        warn(f"the state of the previous publication ({path}) cannot be read ({exc}); the "
             "change report starts again from this publication")
        return None


def _claims(p: Any, terr: pd.DataFrame, communes: pd.DataFrame,
            complete: Mapping[str, Iterable[str]] | None) -> pd.DataFrame:
    """The published-versus-computed table, reusing the site's national preparation."""
    year = p.attrs.get("population_year")

    def prepared_at(y: int, deps: set[str]) -> Any:
        if y == year:
            return p
        base = load_communes(sorted(deps), year=y)
        return prepare(base, terr, whole="departement")

    return claims_table(load_published_figures(), prepared_at, complete_areas(complete))


def _changes(prev: dict[str, Any] | None, state: dict[str, Any]) -> dict[str, Any]:
    if prev is None:
        return {"first_publication": True}
    return {"first_publication": False, **diff(prev, state)}


@public
def publish(
    territories: str | os.PathLike[str] | pd.DataFrame | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    year: int | None = None,
    departements: str | Sequence[str] | None = None,
    progress: bool | None = None,
    keep: int = KEEP_RELEASES,
    complete: Mapping[str, Iterable[str]] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    stale_after: timedelta | None = None,
    jobs: int = 1,
) -> PublishResult:
    """Build the static coverage site and publish it atomically at ``out``.

    Parameters
    ----------
    territories : path, list of paths, folder or DataFrame
        CPTS territories (read with :func:`cpts_geo.read_territories`, or its result).
    out : path
        Where the site is published: a symbolic link to the current release, swapped
        atomically at the end of a successful run.
    year : int, optional
        Population year (default: the newest bundled).
    departements : str or sequence of str, optional
        Départements that get a page (default: every département with at least one covered
        commune). National and regional tables always cover all of France.
    progress : bool, optional
        Show a progress bar (default: when standard error is a terminal).
    keep : int
        Number of releases to keep, the current one included (default 3; at least 2, so that
        the previous site stays available).
    complete : mapping, optional
        The areas the territory files list completely, e.g. ``{"region": ["93"]}``: their
        published figures are compared with the computed ones in the "published vs computed"
        table (:func:`cpts_geo.reconcile`); the others are listed as not covered.
    state_dir : path, optional
        The one folder where the publication keeps what is not the site: the releases (the
        current site and the previous ones, each a complete site) and the lock
        ``publish.lock``. Default ``<out>.releases``, next to ``out``. Choose a folder the web
        server does not list (e.g. ``/var/lib/cpts-geo/site``), the same for every run; one
        state folder per site (its ``target.txt`` names the site).
    stale_after : datetime.timedelta, optional
        The schedule of the publication (e.g. ``timedelta(hours=30)`` for a nightly job): a page
        read later than this after its publication shows a notice that the site has not been
        updated as planned (the last run failed or did not run). Checked by the reader's
        browser against the publication time written in the page, so that it works on a
        static intranet. None (default): no notice.
    jobs : int
        Processes that build the département pages (default 1). With 2 or more, on Linux,
        the process forks ``jobs - 1`` workers that share the prepared data and work beside
        it: the site is byte for byte the one ``jobs=1`` builds, warnings are emitted once
        each in page order, and a failing page raises the error ``jobs=1`` would. Each worker
        adds memory (the pages it builds copy part of the shared data). Elsewhere, 1. Meant
        for the command line and scripts (the nightly job): a process that runs threads of its
        own (a notebook's kernel, a web server) should keep 1, as forking it may hang.

    Returns
    -------
    PublishResult
        Paths, départements, timings and changes since the previous publication.

    Raises
    ------
    PublishError
        Before anything is built: if another run holds the lock; if ``out`` is a file, lies
        under a file, or is a directory that is not a cpts-geo site; if the state folder is a
        file, inside ``out``, another site's or a folder of other files; if the file system has
        no symbolic links, or (for the first publication over a plain site directory) no atomic
        exchange of directory entries.
    cpts_geo.errors.InputError
        If the territories are invalid (nothing is published then), ``stale_after`` is not
        a positive duration, or ``jobs`` is not a whole number above 0.

    Notes
    -----
    At every moment, even if the process is killed, ``out`` resolves to a complete site: the
    previous one until the new one is switched in with one rename. A plain site directory at
    ``out`` (published by hand or by an older version) is exchanged with the link in one step
    and kept as the previous release. A damaged ``state.json`` in the current release gives a
    warning and a change report that starts again. See README, "What happens when things go
    wrong".
    """
    from ..maps.interactive import map_html, render_map
    from ..maps.layers import build_layers, build_overview

    t_start = time.perf_counter()
    out = Path(out).absolute()
    pages_wanted = normalize_departements(departements)
    timings: dict[str, float] = {}
    if stale_after is not None and (not isinstance(stale_after, timedelta)
                                    or stale_after <= timedelta(0)):
        raise InputError(f"`stale_after` was {stale_after!r}; expected a positive "
                         "datetime.timedelta, e.g. timedelta(hours=30) for a nightly job")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"`jobs` was {jobs!r}; expected a whole number of processes, 1 or "
                         "more (e.g. 2 on a machine with two cores)")
    check_target(out, state_dir)  # before the lock, which creates the state folder
    with lock(out, state_dir):
        releases = prepare_target(out, state_dir)
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=releases))
        try:
            with _step("read_territories", timings):
                if isinstance(territories, pd.DataFrame):
                    terr = territories
                    source_name = str(territories.attrs.get("source", "DataFrame"))
                else:
                    terr = read_territories(territories)
                    source_name = str(terr.attrs.get("source"))
            with _step("prepare", timings):
                communes = load_communes(year=year)
                p = prepare(communes, terr, whole="nation",
                            needed=("insee", "population", "departement", "geometry"))
                attrs = dict(p.attrs)
            with _step("coverage", timings):
                data = site_data(p, default_rules(),
                                 None if pages_wanted is None else sorted(pages_wanted))
            with _step("reconcile", timings):
                claims = _claims(p, terr, communes, complete)
            generated = datetime.now(UTC).replace(microsecond=0).isoformat()
            stale = (None if stale_after is None else (datetime.fromisoformat(generated)
                                                       + stale_after).isoformat())
            env = environment()
            site = _Site(env=env, build=build, attrs=attrs, territories=source_name,
                         generated=generated, stale=stale,
                         meta=table_meta(attrs, territories=source_name,
                                         generated=generated),
                         funding_sources=data.funding_sources)
            with _step("national_map", timings):
                _copy_static(build / "assets")
                overview = build_overview(p)
                overview.links = {c: f"departements/{c}/index.html" for c in data.pages}
                national = render_map(overview, title="CPTS : couverture nationale")
                (build / "map.html").write_text(map_html(national, assets="assets/"),
                                                encoding="utf-8")
            with _step("tables", timings):
                # the national tables that pages show a slice of, converted once
                gaps = data.gaps.copy()  # numbered within each département, as on its page
                gaps["zone"] = gaps.groupby("departements").cumcount().to_numpy() + 1
                tables_of = {"communes": Table(data.communes), "cpts": Table(data.cpts),
                             "coverage": Table(data.departements),
                             "timeline": Table(data.timeline),
                             "overlaps": Table(data.overlaps), "gaps": Table(gaps)}
            with _step("cpts_pages", timings):
                cpts_list = cpts_pages(p, data)
                links = {c.cpts_id: f"cpts/{c.name}/index.html" for c in cpts_list}
                env.globals.update(
                    generated=generated, stale_after=stale, cpts_links=links,
                    dep_pages=set(data.pages), size_classes=size_classes_text(),
                    dep_names={d: info.nom for d, info in all_departements().items()},
                    cpts_names=dict(zip(data.cpts["cpts_id"].astype(str),
                                        data.cpts["cpts"].astype(str), strict=True)))
                _write_cpts_pages(site, cpts_list)

            def departement(code: str) -> None:
                page = departement_page(data, code, claims)
                # the bundled boundaries are light already: a coverage simplification
                # per page would cost more than it saves (about a fifth of the vertices)
                m = render_map(build_layers(p, [code], simplify=None))
                # its rows of each national table (found once per table)
                tables = {name: table.take(data.rows_of(
                    "departements" if name == "coverage" else name, code))
                    for name, table in tables_of.items()}
                for name in ("communes", "coverage", "timeline", "overlaps", "gaps"):
                    assert tables[name].n == len(getattr(page, name)), name
                _write_departement(site, page, m, map_html, tables)

            with _step("departements", timings):
                bar = _progress_bar(len(data.pages), progress)
                try:  # with one job, run_pages is a plain loop
                    run_pages(lambda i: departement(data.pages[i]), len(data.pages), jobs,
                              None if bar is None else lambda i: bar.update())
                finally:
                    if bar is not None:
                        bar.close()
            with _step("search", timings):
                index = search_index(p, data, links)
                (build / "communes-index.js").write_text(
                    "window.CPTS_GEO_INDEX = " + js(index) + ";\n", encoding="utf-8")
                (build / "communes.html").write_text(env.get_template("communes.html").render(
                    title="Quelle CPTS couvre ma commune ?", root="", attrs=attrs,
                    territories=source_name, n_communes=len(index["communes"])),
                    encoding="utf-8")
            with _step("index", timings):
                state = snapshot(p, "departement", data.departements)
                changes = _changes(_previous_state(out), state)
                downloads = write_downloads(
                    [("coverage_departements", "Départements", data.departements),
                     ("coverage_regions", "Régions", data.regions),
                     ("coverage_nation", "France", data.nation),
                     ("cpts", "CPTS", tables_of["cpts"]),
                     ("published_vs_computed", "Chiffres publiés", claims)],
                    build, "couverture_cpts_france.xlsx",
                    about_rows(attrs, source_name, generated, stale), site.meta)
                summary = {
                    "generated": generated,
                    "stale_after": stale,
                    "territories": source_name,
                    "vintage": state["vintage"],
                    "source": attrs.get("source"),
                    "nation": records(data.nation),
                    "regions": records(data.regions),
                    "departements": records(data.departements),
                    "cpts": records(data.cpts),
                    "pages": {c: f"departements/{c}/index.html" for c in data.pages},
                    "cpts_pages": links,
                    "changes": changes,
                }
                summary["published_vs_computed"] = records(claims)
                write_json(build / "summary.json", summary)
                write_json(build / STATE_FILE, state)
                (build / "index.html").write_text(
                    env.get_template("index.html").render(
                        title="Couverture de la population par les CPTS",
                        root="",
                        nat=records(data.nation), reg=records(data.regions),
                        dep=records(data.departements), pages=set(data.pages),
                        cpts=records(data.cpts), funding_sources=_sources_shown(
                            data.funding_sources, data.cpts),
                        overlaps=len(data.overlaps), changes=changes, attrs=attrs,
                        territories=source_name, downloads=downloads,
                        claims=records(claims),
                    ),
                    encoding="utf-8",
                )
            with _step("swap", timings):
                release = install(out, build, max(keep, 2))
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    seconds = round(time.perf_counter() - t_start, 2)
    log.info("published %s (%d département pages) in %.1f s", out, len(data.pages), seconds)
    return PublishResult(out=out, release=release, departements=data.pages, seconds=seconds,
                         changes=changes, timings=timings)


def _sources_shown(sources: dict[str, dict[str, Any]], cpts: pd.DataFrame) -> list[dict[str, Any]]:
    """The sources of the funding amounts of these CPTS, for the note under their table."""
    return _sources_used(sources, cpts["funding_sources"].dropna())


def _sources_used(sources: dict[str, dict[str, Any]],
                  values: Iterable[Any]) -> list[dict[str, Any]]:
    """The sources named in ``values`` (``"id; id"``, missing values skipped), in their order."""
    used = {s for ids in values if not _missing(ids) for s in str(ids).split("; ") if s}
    return [{"id": k, **v} for k, v in sources.items() if k in used]


def _missing(value: Any) -> bool:
    """Whether one value is missing as ``Series.dropna`` sees it (None, NaN, NA, NaT)."""
    missing = pd.isna(value)
    return bool(missing) if isinstance(missing, bool | np.bool_) else False


@dataclass
class _Site:
    """What every page of a publication shares."""

    env: Any
    build: Path
    attrs: dict[str, Any]
    territories: str
    generated: str
    stale: str | None
    meta: dict[str, Any]
    funding_sources: dict[str, dict[str, Any]]

    def about(self) -> list[tuple[str, Any]]:
        return about_rows(self.attrs, self.territories, self.generated, self.stale)


def _write_departement(site: _Site, page: Any, m: Any, map_html: Any,
                       tables: dict[str, Table]) -> None:
    """One département's page; ``tables``: its rows of the national communes and CPTS."""
    from ..maps.charts import timeline_svg

    d = site.build / "departements" / page.code
    d.mkdir(parents=True)
    (d / "map.html").write_text(map_html(m, assets="../../assets/"), encoding="utf-8")
    # every text of the chart from an input is escaped by timeline_svg
    chart = Markup(timeline_svg(page.timeline, "departement"))
    row = page.shown("coverage")[0]
    downloads = write_downloads(
        [("coverage", "Couverture", tables["coverage"]),
         ("timeline", "Au fil du temps", tables["timeline"]),
         ("cpts", "CPTS", tables["cpts"]), ("gaps", "Zones sans CPTS", tables["gaps"]),
         ("overlaps", "Chevauchements", tables["overlaps"]),
         ("communes", "Communes", tables["communes"])],
        d, f"couverture_cpts_{page.code}.xlsx", site.about(), site.meta)
    # the same rows for the summary and the page (neither changes them)
    cpts, gaps, overlaps, timeline = (page.shown(t) for t in ("cpts", "gaps", "overlaps",
                                                                "timeline"))
    summary = {
        "departement": page.code,
        "nom": row["nom"],
        "vintage": {k: site.attrs.get(k) for k in ("cog_year", "population_year",
                                                     "census_year")},
        "coverage": row,
        "cpts": cpts,
        "gaps": gaps,
        "overlaps": overlaps,
        "timeline": timeline,
        "undated_cpts": page.undated,
        "downloads": downloads,
    }
    write_json(d / "summary.json", summary)
    (d / "index.html").write_text(
        site.env.get_template("departement.html").render(
            title=f"{row['nom']} ({page.code})", root="../../", code=page.code, row=row,
            cpts=cpts, gaps=gaps, overlaps=overlaps,
            zone_communes=page.zone_communes, zone_names_shown=ZONE_NAMES_SHOWN,
            timeline=timeline, timeline_svg=chart, undated=page.undated,
            funding_sources=_sources_shown(site.funding_sources, page.cpts),
            downloads=downloads, attrs=site.attrs, territories=site.territories,
            claims=page.shown("claims"),
        ),
        encoding="utf-8",
    )


def _write_cpts_pages(site: _Site, pages: Sequence[CptsPage]) -> None:
    """Every CPTS page; the table of their communes converted once for all of them.

    The pages of a publication share one table of their communes (:attr:`CptsPage.members`):
    its downloads (:class:`Table`) and the rows of its HTML table are made once, each page
    writes its slice.
    """
    converted: dict[int, tuple[Table, list[str]]] = {}
    for page in pages:
        if id(page.members) not in converted:
            converted[id(page.members)] = (Table(page.members),
                                           _commune_rows(site, page.members, root="../../"))
        table, html_rows = converted[id(page.members)]
        rows = page.rows
        _write_cpts(site, page, table.take(np.arange(rows.start, rows.stop)),
                    Markup("".join(html_rows[rows])))


def _commune_rows(site: _Site, members: pd.DataFrame, root: str) -> list[str]:
    """The row of each commune of a CPTS page's table of communes, as the template wrote it.

    One ``<tr>`` line per row of ``members`` (ending with a line break): every text escaped as
    Jinja's autoescape does, figures through the site's own filters, the département's link by
    the ``dep_links`` macro (called once per département).
    """
    num, pct, sortkey = (site.env.filters[k] for k in ("num", "pct", "sortkey"))
    macros = site.env.get_template("_macros.html").make_module()
    links: dict[Any, str] = {}

    def dep_link(codes: Any) -> str:
        if codes not in links:
            links[codes] = str(macros.dep_links(codes, root))
        return links[codes]

    return [f"<tr><td>{escape(c['nom'])}</td><td>{escape(c['insee'])}</td>"
            f"<td>{dep_link(c['departement'])}</td>"
            f'<td class="n" data-sort="{escape(sortkey(c["population"]))}">'
            f"{escape(num(c['population']))}</td>"
            f'<td class="n" data-sort="{escape(c["share"])}">{escape(pct(c["share"]))}</td>'
            f"<td>{escape(c['other_cpts'])}</td></tr>\n"
            for c in records(members)]


def _write_cpts(site: _Site, page: CptsPage, communes: Table, commune_rows: Markup) -> None:
    """One CPTS's page: its figures, communes, neighbours, downloads, and its map.

    ``communes``: its rows of the table of every CPTS's communes, converted once;
    ``commune_rows``: the rows of its table of communes (:func:`_commune_rows`).
    """
    from urllib.parse import quote

    d = site.build / "cpts" / page.name  # a checked slug or cpts-<n>: never raw input
    d.mkdir(parents=True)
    row = {k: jsonable(v) for k, v in page.row.items()}
    downloads = write_downloads(
        [("communes", "Communes", communes)], d, None, site.about(), site.meta)
    map_url = (None if page.map_departement is None else
               f"../../departements/{page.map_departement}/map.html#cpts="
               f"{quote(page.cpts_id, safe='')}")
    (d / "index.html").write_text(
        site.env.get_template("cpts.html").render(
            title=cpts_title(str(row["cpts"])), root="../../", row=row, page=page,
            commune_count=communes.n, commune_rows=commune_rows, map_url=map_url,
            downloads=downloads, funding_sources=_sources_used(site.funding_sources,
                                                               [page.row["funding_sources"]]),
            attrs=site.attrs, territories=site.territories,
        ),
        encoding="utf-8",
    )
