r"""The ``cpts-geo`` command line.

Every subcommand prints a table (default), CSV or JSON on standard output, or writes it
atomically to ``--output``. Bad input ends with exit status 2 and one ``error:`` block naming
the file, row, column and value (a first line saying how many problems and what to do, then one
problem a line); no traceback. Control characters and bidirectional overrides that input names
may hold are shown escaped (``\x1b``, ``\u202e``) in tables, CSV, errors and warnings.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ._about import __version__
from ._atomic import check_output, write_text_atomic
from .errors import CptsGeoError, CptsGeoWarning, TerritoryError
from .io.writers import csv_metadata, dump_json, meta_line, records, table_meta, terminal_safe

__all__ = ["main"]

FORMATS = ("table", "csv", "json")


#: The format an ``--output`` extension gives when ``--format`` is not given.
EXTENSIONS = {".csv": "csv", ".json": "json", ".geojson": "geojson", ".txt": "table"}


def _add_output(p: argparse.ArgumentParser, geo: bool = False) -> None:
    formats = (*FORMATS, "geojson") if geo else FORMATS
    p.add_argument("--format", choices=formats, default=None,
                   help="output format (default: from the extension of --output: "
                   f"{', '.join(e for e, f in EXTENSIONS.items() if f in formats)}; "
                   "table on standard output)")
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="write to FILE (atomically; its folder must exist) instead of standard "
                   "output; a CSV file gets a sidecar FILE-metadata.json with its vintage and "
                   "sources")
    p.add_argument("--json-envelope", action="store_true",
                   help='JSON: an object {"meta": {...}, "records": [...]} giving the vintage '
                   "and sources, instead of the bare list of records")
    p.set_defaults(formats=formats)


def _add_area(p: argparse.ArgumentParser) -> None:
    p.add_argument("--departement", "-d", action="append", metavar="CODE",
                   help="département code (repeat for several); default: the départements of "
                   "the territories")
    p.add_argument("--year", type=int, help="population year (default: newest bundled)")


_TERRITORIES_HELP = ("CPTS territories: CSV, XLSX, GeoJSON or GeoPackage files, or a folder of "
                     "them (several files or folders allowed)")


def _territories_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--territories", "-t", required=True, type=Path, metavar="FILE",
                   nargs="+", action="extend", help=_TERRITORIES_HELP)
    _reading_arg(p)


def _reading_arg(p: argparse.ArgumentParser) -> None:
    reading = p.add_argument_group("reading the territory files")
    reading.add_argument("--sheet", metavar="NAME",
                         help="the Excel sheet, or GeoPackage layer, to read (default: the "
                         "active sheet if visible, else the first visible one; a hidden sheet is "
                         "read only when named); a number that names no sheet is a position, "
                         "from 0")
    reading.add_argument("--trust-codes", action="store_true",
                         help="on a row whose INSEE code and commune name designate different "
                         "communes, use the code (with a warning) instead of stopping")
    reading.add_argument("--max-bytes", type=int, metavar="N",
                         help="largest file read, in bytes, and largest decompressed workbook "
                         "(default 268435456, 256 MiB)")
    reading.add_argument("--max-rows", type=int, metavar="N",
                         help="most rows of a table (default 200000)")
    reading.add_argument("--max-cells", type=int, metavar="N",
                         help="most cells of a table held in memory (default 5000000)")


def _reading(args: argparse.Namespace) -> dict[str, object]:
    """The options of read_territories given on the command line (the others by default)."""
    options: dict[str, object] = {}
    if args.sheet is not None:
        options["sheet"] = args.sheet
    if args.trust_codes:
        options["trust_codes"] = True
    for name in ("max_bytes", "max_rows", "max_cells"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options


def _territories(args: argparse.Namespace) -> pd.DataFrame:
    from .io.readers import read_territories

    return read_territories(args.territories, **_reading(args))  # type: ignore[arg-type]


def _complete_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--complete", action="append", metavar="LEVEL:CODE", default=[],
                   help="an area the territory files list completely (every CPTS there), "
                   "e.g. region:93 for the ARS PACA listing; its published figures are compared")


def _add_territories(p: argparse.ArgumentParser) -> None:
    _territories_arg(p)
    p.add_argument("--as-of", metavar="DATE", help="count only CPTS with a status date on or "
                   "before DATE (YYYY-MM-DD)")
    p.add_argument("--status", action="append", metavar="STATUS",
                   help="count only CPTS with this status (repeatable), e.g. 'ACI signé'")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="cpts-geo",
        description="How well is a French territory covered by CPTS? Offline by default.",
        epilog="Each command's options and an example: cpts-geo COMMAND --help.",
    )
    parser.add_argument("--version", action="version", version=f"cpts-geo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("communes", help="communes with population (reference data)")
    p.add_argument("--departement", "-d", action="append", metavar="CODE")
    p.add_argument("--region", "-r", action="append", metavar="CODE")
    p.add_argument("--year", type=int)
    p.add_argument("--arrondissements", action="store_true",
                   help="Paris, Lyon, Marseille by arrondissement")
    p.add_argument("--source", choices=("bundled", "geo-api", "ign"), default="bundled")
    p.add_argument("--refresh", action="store_true",
                   help="online sources: download again even if the cache has the answer")
    p.add_argument("--max-age", type=float, metavar="DAYS",
                   help="online sources: download again if the cache is older than DAYS")
    _add_output(p, geo=True)

    p = sub.add_parser("coverage", help="population covered by CPTS")
    _add_territories(p)
    _add_area(p)
    p.add_argument("--by", choices=("departement", "region", "nation", "cpts"),
                   default="departement")
    _add_output(p)

    p = sub.add_parser("gaps", help="uncovered communes grouped into contiguous zones")
    _add_territories(p)
    _add_area(p)
    _add_output(p, geo=True)

    p = sub.add_parser("overlaps", help="communes claimed by several CPTS")
    _add_territories(p)
    _add_area(p)
    _add_output(p, geo=True)

    p = sub.add_parser("outlines", help="one outline per CPTS, with parts and size class")
    _add_territories(p)
    _add_area(p)
    _add_output(p, geo=True)

    p = sub.add_parser("timeline", help="coverage at each status date that changes it")
    _territories_arg(p)
    p.add_argument("--status", action="append", metavar="STATUS",
                   help="count only CPTS with this status (repeatable), e.g. 'ACI signé'")
    _add_area(p)
    p.add_argument("--by", choices=("departement", "region", "nation"), default="departement")
    _add_output(p)

    p = sub.add_parser("compare", help="what changed from one territory file to another")
    p.add_argument("before", type=Path, metavar="BEFORE", help="territory file, before")
    p.add_argument("after", type=Path, metavar="AFTER", help="territory file, after")
    _reading_arg(p)
    p.add_argument("--as-of", metavar="DATE", help="compare the CPTS with a status date on or "
                   "before DATE (YYYY-MM-DD) in both files")
    p.add_argument("--status", action="append", metavar="STATUS",
                   help="compare only CPTS with this status (repeatable)")
    _add_area(p)
    _add_output(p)

    p = sub.add_parser("funding", help="ACI funding rules of each CPTS's size class, sourced")
    _add_territories(p)
    _add_area(p)
    p.add_argument("--rules", type=Path, metavar="FILE",
                   help="ACI rules file (JSON; default: the one shipped in the package)")
    _add_output(p)

    p = sub.add_parser("publish", help="build the static coverage site (atomic)")
    _territories_arg(p)
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    _complete_arg(p)
    p.add_argument("--year", type=int)
    p.add_argument("--departement", "-d", action="append", metavar="CODE",
                   help="publish only these départements (default: all with a CPTS)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="where the releases (the current site and the previous ones) and the "
                   "lock live (default: OUT.releases next to --out); keep it out of what the "
                   "web server lists, and the same for every run")
    p.add_argument("--stale-after", type=float, metavar="HOURS",
                   help="the pages show a notice when they are older than HOURS (e.g. 30 for a "
                   "nightly job): the scheduled publication has not replaced them")
    p.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                   help="processes building the département pages (default 1; on Linux, 2 on a "
                   "machine with two free cores is faster and the site is the same; each adds "
                   "memory)")

    p = sub.add_parser("reconcile", help="published coverage figures beside the computed ones")
    _territories_arg(p)
    _complete_arg(p)
    p.add_argument("--as-of", metavar="DATE", help="date of the territory files")
    _add_output(p)

    p = sub.add_parser("propose", help="candidate CPTS for the uncovered communes, written as "
                       "a territory file (status 'proposition')")
    p.add_argument("--territories", "-t", type=Path, metavar="FILE", nargs="+",
                   action="extend", default=[], help=_TERRITORIES_HELP + "; without: no CPTS yet")
    _reading_arg(p)
    p.add_argument("--departement", "-d", action="append", metavar="CODE", required=True,
                   help="the area (repeat for several)")
    p.add_argument("--target", type=int, metavar="N",
                   help="total number of CPTS wanted in the area, existing and proposed")
    p.add_argument("--min-population", type=int, default=40_000, metavar="N")
    p.add_argument("--max-population", type=int, default=175_000, metavar="N")
    p.add_argument("--ignore-epci", action="store_true",
                   help="do not follow EPCI boundaries")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mountain", action="append", metavar="CODE",
                   help="département or commune where taille 1 is allowed (repeatable)")
    p.add_argument("--mountain-min-population", type=int, default=10_000, metavar="N")
    p.add_argument("--year", type=int, help="population year (default: newest bundled)")
    p.add_argument("--candidates", type=Path, metavar="FILE",
                   help="also write the figures and reason of each candidate (CSV, atomically)")
    p.add_argument("--format", choices=FORMATS, default="csv",
                   help="output format (default: csv, a territory file read_territories reads)")
    p.add_argument("--output", "-o", type=Path,
                   help="write to this file (atomically; its folder must exist) instead of "
                   "standard output")

    p = sub.add_parser("info", help="vintages, sources and licences of the reference data")
    p.add_argument("--json", action="store_true", help="the full manifest of the bundle, as JSON")
    _document(sub)
    return parser


#: What each command does and an example of it (``--help`` and the documentation show them).
_COMMANDS: dict[str, tuple[str, str]] = {
    "communes": (
        "The communes of départements or régions with their INSEE code, EPCI and legal "
        "population, from the bundled reference data (offline) or an online source.",
        "cpts-geo communes -d Loire -o loire.csv"),
    "coverage": (
        "The share of the population covered by the CPTS of the territory files, by "
        "département (default), région or nation; or one row per CPTS (--by cpts: "
        "population, size class, parts). Each inhabitant counts once.",
        "cpts-geo coverage -t data/territories/cpts_seeds.csv --by cpts -o cpts.csv"),
    "gaps": (
        "Communes covered by no CPTS, grouped into zones of neighbouring communes (largest "
        "population first), with the CPTS around each zone and whether it is an enclave.",
        "cpts-geo gaps -t data/territories/cpts_seeds.csv -d 38 -o gaps.geojson"),
    "overlaps": (
        "Communes claimed by several CPTS, and the population claimed more than once.",
        "cpts-geo overlaps -t data/territories"),
    "outlines": (
        "One outline per CPTS (the union of its communes) with its population, size class and "
        "number of parts (more than one: the territory is not contiguous).",
        "cpts-geo outlines -t data/territories/cpts_paca.csv -o outlines.geojson"),
    "timeline": (
        "The coverage at each status date that changes it: each CPTS counts with its "
        "perimeter in the file from its status date on, at one population vintage. CPTS "
        "without a date are left out with a warning, not guessed.",
        "cpts-geo timeline -t data/territories/cpts_seeds.csv -d 69"),
    "compare": (
        "Compare two territory files (today's map and a draft, or two dates): CPTS created, "
        "dissolved or changed, communes that enter, leave or change CPTS, coverage of each "
        "département before and after. JSON: an object with 'cpts', 'communes' and 'areas'; "
        "CSV: one table with a 'section' column.",
        "cpts-geo compare data/territories/cpts_seeds.csv draft.csv -d 42"),
    "funding": (
        "The ACI funding rules of each CPTS's size class (taille), each amount with its "
        "source; an amount no source establishes stays empty. These are the rules of a size "
        "class, not a CPTS's contract.",
        "cpts-geo funding -t data/territories/cpts_seeds.csv -o funding.csv"),
    "publish": (
        "Build the static coverage site (tables, maps, one page per département and per CPTS, "
        "a commune search, downloads for Excel and for programs) and publish it atomically: "
        "--out is a symbolic link to the current release, switched in one step once the new "
        "site is complete. The last 3 releases are kept in the state folder.",
        "cpts-geo publish -t data/territories --complete region:93 --out site "
        "--stale-after 30"),
    "reconcile": (
        "The coverage figures and CPTS counts published by ARS, Assurance Maladie and the "
        "FCPTS beside the figures computed from the same perimeters, where the territory files "
        "list every CPTS of the area (--complete), with what explains the difference.",
        "cpts-geo reconcile -t data/territories --complete region:93"),
    "propose": (
        "Candidate CPTS for the communes no CPTS covers in the départements given: contiguous, "
        "within the ACI size bounds, following the EPCI where they can, written as a territory "
        "file (status 'proposition') that read_territories reads back; how many and why on "
        "standard error. A starting point for a discussion, not a decision.",
        "cpts-geo propose -t data/territories -d 38 --target 20 -o propositions_38.csv"),
    "info": (
        "A short summary of the reference data shipped in the package: vintages, sources, "
        "licences and what the build found (the full manifest with --json).",
        "cpts-geo info --json"),
}


def _document(sub: argparse._SubParsersAction) -> None:
    """Give every command its description and example (a new command needs an entry)."""
    import textwrap

    for name, p in sub.choices.items():
        description, example = _COMMANDS[name]
        p.description = textwrap.fill(description, 88)
        p.epilog = f"example:\n  {example}"
        p.formatter_class = argparse.RawDescriptionHelpFormatter


# ---------------------------------------------------------------------------------------------
def _output_format(args: argparse.Namespace) -> str:
    """The output format: ``--format``, else the extension of ``--output``, else a table."""
    from .errors import InputError

    if args.format is not None:
        return str(args.format)
    if args.output is None:
        return "table"
    fmt = EXTENSIONS.get(args.output.suffix.lower())
    if fmt is None or fmt not in args.formats:
        known = ", ".join(e for e, f in EXTENSIONS.items() if f in args.formats)
        raise InputError(f"--output {args.output}: cannot tell the format from the extension "
                         f"{args.output.suffix or '(none)'!r}; use one of {known} or give "
                         f"--format ({', '.join(args.formats)})")
    return fmt


def _meta(df: pd.DataFrame, args: argparse.Namespace | None) -> dict[str, Any]:
    """The vintage and sources of a table printed or written by a command."""
    files = list(getattr(args, "territories", None) or [])
    files += [getattr(args, k) for k in ("before", "after") if getattr(args, k, None)]
    names = ", ".join(Path(f).name for f in files) or None
    meta = table_meta(df.attrs, territories=names)
    if getattr(args, "as_of", None):
        meta["as_of"] = getattr(args, "as_of", None)
    if getattr(args, "status", None):
        meta["statuses"] = "; ".join(getattr(args, "status", None) or [])
    return meta


def _emit(df: pd.DataFrame, fmt: str, output: Path | None,
          args: argparse.Namespace | None = None) -> None:
    if fmt == "geojson":
        import geopandas as gpd

        gdf = df if isinstance(df, gpd.GeoDataFrame) else gpd.GeoDataFrame(df)
        text = gdf.to_json(drop_id=True, ensure_ascii=False, to_wgs84=True)
    elif fmt == "json":
        buf = io.StringIO()
        rows = records(df)
        wrap = args is not None and args.json_envelope
        dump_json({"meta": _meta(df, args), "records": rows} if wrap else rows, buf)
        text = buf.getvalue()
    else:
        plain = pd.DataFrame(df.drop(columns="geometry", errors="ignore"))
        if fmt == "csv":
            text = terminal_safe(plain.to_csv(index=False, lineterminator="\n"))
        elif plain.empty:
            text = "  ".join(map(str, plain.columns)) + "\n(no rows)\n"
        else:
            shown = plain.map(lambda v: terminal_safe(v) if isinstance(v, str) else v)
            with pd.option_context("display.max_rows", None, "display.max_columns", None,
                                   "display.width", 250, "display.max_colwidth", 60):
                text = shown.to_string(index=False) + "\n"
    if fmt == "table":
        text += f"\n{meta_line(_meta(df, args))}\n"
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text, create_parent=False)
        if fmt == "csv":  # the vintage and sources beside the file, which stays plain CSV
            buf = io.StringIO()
            dump_json(csv_metadata(output.name, _meta(df, args)), buf)
            write_text_atomic(output.with_name(output.name + "-metadata.json"), buf.getvalue(),
                              create_parent=False)


def _load(
    args: argparse.Namespace, level: str = "departement"
) -> tuple[pd.DataFrame, pd.DataFrame, list[str] | None]:
    """Read the territories and load the communes the figures need.

    At département level: the user's départements and those of the territories (a CPTS that
    straddles a border needs all its communes); at région level, every commune of those
    régions; at national level, all of France: a total is never computed on a partial area.
    """
    from .geography import departement_of, departements, normalize_departements
    from .sources.loaders import load_communes

    territories = _territories(args)
    wanted = None
    if args.departement:
        wanted = sorted(normalize_departements(args.departement) or [])
    deps = set(wanted or []) | {departement_of(c) for c in territories["insee"]}
    if level == "nation":
        communes = load_communes(year=args.year)
    elif level == "region":
        regions = sorted({departements()[d].region for d in deps})
        communes = load_communes(regions=regions, year=args.year)
    else:
        communes = load_communes(sorted(deps), year=args.year)
    return territories, communes, wanted


def _publish_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of publish that have no default on the command line."""
    from datetime import timedelta

    from .errors import InputError

    options: dict[str, Any] = {}
    if args.state_dir is not None:
        options["state_dir"] = args.state_dir
    if args.stale_after is not None:
        if not args.stale_after > 0 or args.stale_after == float("inf"):
            raise InputError(f"--stale-after {args.stale_after}: expected a number of hours "
                             "above 0, e.g. 30 for a nightly publication")
        options["stale_after"] = timedelta(hours=args.stale_after)
    return options


def _info_summary(info: dict[str, Any]) -> str:
    """What the bundle holds, in a few lines (the full manifest: ``info --json``)."""
    counts, sources, report = info["counts"], info["sources"], info["report"]
    years = sorted(info["population_years"])
    default = info["population_year_default"]
    census = next(p["census_year"] for p in sources["populations"].values()
                  if p["in_force"] == default)
    lines = [
        f"cpts-geo {__version__}: reference data shipped in the package (offline)",
        f"  communes      COG {info['cog_year']}: {counts['communes']:,} communes and "
        f"{counts['arrondissements']} arrondissements (Paris, Lyon, Marseille), "
        f"{counts['departements']} départements, {counts['regions']} régions, "
        f"{counts['epci']:,} EPCI",
        f"  populations   INSEE legal populations in force in {years[0]}-{years[-1]} "
        f"(default {default}: census {census}), from "
        f"{sources['populations'][next(iter(sources['populations']))]['package'].split(' ')[0]}"
        " (npm)",
        f"  boundaries    {sources['boundaries']['package']}, cleaned into a valid coverage; "
        f"{len(report['communes_without_geometry'])} communes without geometry "
        f"({', '.join(report['communes_without_geometry'])}); "
        f"{report['holes_over_1_ha']} holes covered by no commune "
        f"({report['holes_total_km2']} km²)",
        f"  contiguity    {counts['contiguity_pairs']:,} pairs of neighbouring communes",
        f"  licences      boundaries: {sources['boundaries']['licence']}; "
        f"populations: {sources['populations_licence']}",
        "Full manifest (sources, checksums, build report): cpts-geo info --json",
    ]
    return "\n".join(lines) + "\n"


def _complete(items: list[str]) -> dict[str, list[str]]:
    """``["region:93", "departement:05"]`` -> ``{"region": ["93"], "departement": ["05"]}``."""
    from .errors import InputError

    out: dict[str, list[str]] = {}
    for item in items:
        level, _, code = item.partition(":")
        if level not in ("departement", "region", "nation") or (not code and level != "nation"):
            raise InputError(f"--complete {item!r}: expected LEVEL:CODE with LEVEL departement, "
                             "region or nation, e.g. region:93")
        out.setdefault(level, []).append(code or "FR")
    return out


def _restrict(
    df: pd.DataFrame, wanted: list[str] | None, column: str = "departement"
) -> pd.DataFrame:
    if wanted is None or column not in df.columns:
        return df
    if column == "departements":
        keep = df[column].fillna("").str.split(",").map(lambda ds: bool(set(wanted) & set(ds)))
        return df[keep.astype(bool)]
    return df[df[column].isin(wanted)]


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "formats", None):  # a command with an output: refuse a bad one first
        if args.output is not None:
            check_output(args.output, create_parent=False)
        args.format = _output_format(args)
    if args.command == "info":
        from .sources.bundle import bundle_info

        info = bundle_info()
        if args.json:
            report = dict(info["report"])
            report.pop("holes", None)
            dump_json({k: v for k, v in info.items() if k not in ("report", "geography")}
                      | {"report": report}, sys.stdout)
        else:
            sys.stdout.write(_info_summary(info))
        return 0
    if args.command == "communes":
        from .sources.loaders import load_communes

        gdf = load_communes(args.departement, args.region, year=args.year, source=args.source,
                            arrondissements=args.arrondissements, refresh=args.refresh,
                            max_age=args.max_age)
        if args.format != "geojson":
            gdf = gdf.drop(columns="geometry")
        _emit(gdf, args.format, args.output, args)
        return 0
    if args.command == "publish":
        import logging

        from .publishing.site import publish

        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        # the reading options apply to a table read here; without them publish reads the files
        territories = _territories(args) if _reading(args) else args.territories
        publish(territories, args.out, year=args.year, departements=args.departement,
                progress=False if args.no_progress else None,
                complete=_complete(args.complete), jobs=args.jobs, **_publish_options(args))
        return 0

    if args.command == "reconcile":
        from .analysis.claims import reconcile

        table = reconcile(None, _territories(args),
                          complete=_complete(args.complete), as_of=args.as_of)
        _emit(table, args.format, args.output, args)
        return 0

    if args.command == "compare":
        _compare(args)
        return 0
    if args.command == "propose":
        return _propose(args)

    from .analysis.diagnostics import find_gaps, find_overlaps, territory_geometries
    from .analysis.rates import coverage, cpts_table
    from .geography import departement_of

    level = args.by if args.command in ("coverage", "timeline") else "departement"
    territories, communes, wanted = _load(args, level)
    if args.command == "timeline":
        from .analysis.changes import coverage_timeline

        if args.by == "departement":
            shown = wanted or sorted({departement_of(c) for c in territories["insee"]})
            communes = communes[communes["departement"].isin(shown)]
        table = coverage_timeline(communes, territories, by=args.by, statuses=args.status)
        if args.by == "region" and wanted is not None:
            regions = set(communes.loc[communes["departement"].isin(wanted), "region"])
            table = table[table["region"].isin(regions)]
        _emit(table, args.format, args.output, args)
        return 0
    filters = {"as_of": args.as_of, "statuses": args.status}
    if args.command == "coverage":
        if args.by == "cpts":
            table = cpts_table(communes, territories, **filters)
            table = _restrict(table, wanted, "departements")
        elif args.by == "departement":
            shown = wanted or sorted({departement_of(c) for c in territories["insee"]})
            table = coverage(communes[communes["departement"].isin(shown)], territories,
                             by="departement", **filters)
        else:
            table = coverage(communes, territories, by=args.by, **filters)
            if args.by == "region" and wanted is not None:
                regions = set(communes.loc[communes["departement"].isin(wanted), "region"])
                table = table[table["region"].isin(regions)]
        _emit(table, args.format, args.output, args)
    elif args.command == "gaps":
        scope = communes if wanted is None else communes[communes["departement"].isin(wanted)]
        _emit(find_gaps(scope, territories, **filters), args.format, args.output, args)
    elif args.command == "overlaps":
        table = find_overlaps(communes, territories, **filters)
        _emit(_restrict(table, wanted), args.format, args.output, args)
    elif args.command == "outlines":
        table = territory_geometries(communes, territories, **filters)
        _emit(_restrict(table, wanted, "departements"), args.format, args.output,
              args)
    elif args.command == "funding":
        from .analysis.funding import aci_funding

        table = aci_funding(communes, territories, rules=args.rules, **filters)
        _emit(_restrict(table, wanted, "departements"), args.format, args.output,
              args)
    return 0


def _compare(args: argparse.Namespace) -> None:
    from .analysis.changes import compare
    from .geography import departement_of, normalize_departements
    from .io.readers import read_territories
    from .sources.loaders import load_communes

    before = read_territories(args.before, **_reading(args))  # type: ignore[arg-type]
    after = read_territories(args.after, **_reading(args))  # type: ignore[arg-type]
    wanted = sorted(normalize_departements(args.departement) or []) if args.departement else None
    deps = set(wanted or []) | {departement_of(c) for t in (before, after) for c in t["insee"]}
    communes = load_communes(sorted(deps), year=args.year)
    c = compare(communes, before, after, departements=wanted, as_of=args.as_of,
                statuses=args.status)
    result = c.to_dict()
    if args.format == "json":
        buf = io.StringIO()
        meta = {"meta": _meta(c.areas, args)} if args.json_envelope else {}
        dump_json(meta | {"vintage": {k: c.areas.attrs.get(k) for k in
                                      ("cog_year", "population_year", "census_year")},
                          "cpts": result["cpts"], "communes": result["communes"],
                          "areas": result["areas"]}, buf)
        text = buf.getvalue()
    else:
        cpts = pd.DataFrame(
            [{"cpts": r["cpts"], "cpts_id": r["cpts_id"], "change": r["change"],
              "details": _describe(r)} for r in result["cpts"]],
            columns=["cpts", "cpts_id", "change", "details"])
        communes_t = pd.DataFrame(
            [{"insee": r["insee"], "nom": r["nom"], "change": r["change"],
              "before": "; ".join(r["before"]), "after": "; ".join(r["after"])}
             for r in result["communes"]],
            columns=["insee", "nom", "change", "before", "after"])
        areas = pd.DataFrame(result["areas"], columns=[
            "area", "nom", "before_rate", "after_rate", "delta", "population",
            "before_covered_population", "after_covered_population"])
        if args.format == "csv":
            long = pd.concat([
                pd.DataFrame({"section": "cpts", "key": cpts["cpts_id"], "nom": cpts["cpts"],
                              "change": cpts["change"], "details": cpts["details"]}),
                pd.DataFrame({"section": "communes", "key": communes_t["insee"],
                              "nom": communes_t["nom"], "change": communes_t["change"],
                              "before": communes_t["before"], "after": communes_t["after"]}),
                pd.DataFrame({"section": "areas", "key": areas["area"], "nom": areas["nom"],
                              "before": areas["before_rate"], "after": areas["after_rate"],
                              "delta": areas["delta"]}),
            ], ignore_index=True)
            text = long.to_csv(index=False, lineterminator="\n")
        else:
            text = ""
            for title, table in (("CPTS", cpts), ("Communes that entered, left or changed "
                                                  "CPTS", communes_t), ("Coverage", areas)):
                text += f"{title}\n"
                if table.empty:
                    text += "(none)\n\n"
                    continue
                with pd.option_context("display.max_rows", None, "display.max_columns", None,
                                       "display.width", 250, "display.max_colwidth", 80):
                    text += table.to_string(index=False) + "\n\n"
            text += meta_line(_meta(c.areas, args)) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output, text, create_parent=False)
        if args.format == "csv":
            buf = io.StringIO()
            dump_json(csv_metadata(args.output.name, _meta(c.areas, args)), buf)
            write_text_atomic(args.output.with_name(args.output.name + "-metadata.json"),
                              buf.getvalue(), create_parent=False)


def _describe(rec: dict[str, Any]) -> str:
    """The details of one CPTS's change, in a line."""
    parts = []
    if "renamed_from" in rec:
        parts.append(f"renamed from {rec['renamed_from']}")
    for field in ("status", "status_date"):
        if field in rec:
            was, now = rec[field]
            parts.append(f"{field} {was or '-'} -> {now or '-'}")
    for field, sign in (("communes_added", "+"), ("communes_removed", "-")):
        if field in rec:
            codes = list(rec[field])
            parts.append(f"{sign}{len(codes)} communes ({', '.join(codes)})")
    if "shares" in rec:
        parts.append(f"shares changed: {len(rec['shares'])}")
    if "n_communes" in rec:
        parts.append(f"{rec['n_communes']} communes")
    return "; ".join(parts)


def _propose(args: argparse.Namespace) -> int:
    """Candidate CPTS, written as a territory file; the count and its reason on stderr."""
    from .analysis.proposals import propose_territories
    from .geography import normalize_departements
    from .sources.loaders import load_communes

    deps = normalize_departements(args.departement) or []
    territories = _territories(args) if args.territories else None
    communes = load_communes(deps, year=args.year, arrondissements=True)
    result = propose_territories(
        communes, territories, departements=deps, target=args.target,
        min_population=args.min_population, max_population=args.max_population,
        respect=None if args.ignore_epci else "epci", seed=args.seed, mountain=args.mountain,
        mountain_min_population=args.mountain_min_population)
    print(f"propose: {_one_line(result.reason)}", file=sys.stderr)
    if len(result.candidates) == 0 and args.output is not None:
        # a territory file with no row is no territory file: read_territories refuses it
        print(f"propose: nothing written to {args.output}", file=sys.stderr)
        return 0
    _emit(result.territory_file(), args.format, args.output)
    if args.candidates is not None:
        _emit(result.candidates, "csv", args.candidates)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 bad input, 1 other failure).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("default", CptsGeoWarning)
        warnings.showwarning = _show_warning  # restored on leaving, unlike formatwarning
        try:
            return _run(args)
        except CptsGeoError as exc:
            print(_error_block(exc), file=sys.stderr)
            return 2
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError,
                PermissionError) as exc:  # a path given on the command line that cannot be used
            print(f"error: {terminal_safe(str(exc.filename or ''))}: {exc.strerror}",
                  file=sys.stderr)
            return 2
        except BrokenPipeError:  # `cpts-geo ... | head`
            return 0
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130


def _one_line(exc: BaseException | Warning | str) -> str:
    return terminal_safe(" ".join(str(exc).split()))


def _error_block(exc: CptsGeoError) -> str:
    """``error: <what and what to do>`` then, for a territory file, one problem a line."""
    if isinstance(exc, TerritoryError):
        first, *rest = str(exc).split("\n")
        return "\n".join([f"error: {_one_line(first)}", *(f"  {_one_line(r)}" for r in rest)])
    return f"error: {_one_line(exc)}"


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: object = None, line: str | None = None,
) -> None:
    """Print a warning as one line ``warning: ...`` on standard error (names escaped)."""
    print(f"warning: {_one_line(message)}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
