"""MkDocs hook: the command-line reference is generated from the argument parser itself."""

from __future__ import annotations

import argparse
import re
from typing import Any

MARKER = "<!-- cli-reference -->"


def _cli_reference() -> str:
    from cpts_geo.cli import build_parser

    parser = build_parser()
    parts = ["```text", parser.format_help().rstrip(), "```"]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        parts += [f"\n## `cpts-geo {name}`\n", "```text", command.format_help().rstrip(), "```"]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace the marker of the CLI page by the parser's help of every subcommand."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, _cli_reference())
    return re.sub(r"\r\n", "\n", markdown)
