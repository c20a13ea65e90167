#!/usr/bin/env python3
r"""Nightly job: rebuild and publish the static coverage site.

A thin wrapper over ``cpts-geo publish`` for cron or a CI scheduler::

    python scripts/publish_coverage.py --territories data/territories \
        --complete region:93 --out /srv/www/cpts

The site is built in a temporary directory and swapped in atomically; a failed or killed run
leaves the previous site untouched; a second concurrent run is refused (exit status 2). One log
line per step with its timing goes to standard error.
"""

from __future__ import annotations

import sys

from cpts_geo.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["publish", *sys.argv[1:]]))
