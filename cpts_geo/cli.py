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

from ._atomic import write_text_atomic
from .errors import CptsGeoError, CptsGeoWarning, TerritoryError
from .io.writers import dump_json, records, terminal_safe

__all__ = ["main"]

FORMATS = ("table", "csv", "json")


def _add_output(p: argparse.ArgumentParser, geo: bool = False) -> None:
    formats = (*FORMATS, "geojson") if geo else FORMATS
    p.add_argument("--format", choices=formats, default="table",
                   help="output format (default: table)")
    p.add_argument("--output", "-o", type=Path,
                   help="write to this file (atomically) instead of standard output")


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
    )
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

    p = sub.add_parser("compare", help="what changed from one territory file to another",
                       description="Compare two territory files (today's map and a draft, or "
                       "two dates): CPTS created, dissolved or changed, communes that enter, "
                       "leave or change CPTS, coverage of each département before and after. "
                       "JSON: an object with 'cpts', 'communes' and 'areas'; CSV: one table "
                       "with a 'section' column.")
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
                   help="write to this file (atomically) instead of standard output")

    sub.add_parser("info", help="vintages, sources and licences of the reference data")
    return parser


# ---------------------------------------------------------------------------------------------
def _emit(df: pd.DataFrame, fmt: str, output: Path | None) -> None:
    if fmt == "geojson":
        import geopandas as gpd

        gdf = df if isinstance(df, gpd.GeoDataFrame) else gpd.GeoDataFrame(df)
        text = gdf.to_json(drop_id=True, ensure_ascii=False, to_wgs84=True)
    elif fmt == "json":
        buf = io.StringIO()
        dump_json(records(df), buf)
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
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text)


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
    if args.command == "info":
        from .sources.bundle import bundle_info

        info = bundle_info()
        report = dict(info["report"])
        report.pop("holes", None)
        dump_json({k: v for k, v in info.items() if k not in ("report", "geography")}
                  | {"report": report}, sys.stdout)
        return 0
    if args.command == "communes":
        from .sources.loaders import load_communes

        gdf = load_communes(args.departement, args.region, year=args.year, source=args.source,
                            arrondissements=args.arrondissements, refresh=args.refresh,
                            max_age=args.max_age)
        if args.format != "geojson":
            gdf = gdf.drop(columns="geometry")
        _emit(gdf, args.format, args.output)
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
                complete=_complete(args.complete))
        return 0

    if args.command == "reconcile":
        from .analysis.claims import reconcile

        table = reconcile(None, _territories(args),
                          complete=_complete(args.complete), as_of=args.as_of)
        _emit(table, args.format, args.output)
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
        _emit(table, args.format, args.output)
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
        _emit(table, args.format, args.output)
    elif args.command == "gaps":
        scope = communes if wanted is None else communes[communes["departement"].isin(wanted)]
        _emit(find_gaps(scope, territories, **filters), args.format, args.output)
    elif args.command == "overlaps":
        table = find_overlaps(communes, territories, **filters)
        _emit(_restrict(table, wanted), args.format, args.output)
    elif args.command == "outlines":
        table = territory_geometries(communes, territories, **filters)
        _emit(_restrict(table, wanted, "departements"), args.format, args.output)
    elif args.command == "funding":
        from .analysis.funding import aci_funding

        table = aci_funding(communes, territories, rules=args.rules, **filters)
        _emit(_restrict(table, wanted, "departements"), args.format, args.output)
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
        dump_json({"vintage": {k: c.areas.attrs.get(k) for k in
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
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output, text)


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
