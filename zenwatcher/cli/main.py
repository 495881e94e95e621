"""The `zen-watcher` command: `run` the daemon, `convert` payloads offline, `--version`.

Exit codes: 0 done, 1 the daemon failed, 2 bad usage, bad settings or unreadable input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from zenwatcher import __version__
from zenwatcher.settings import ConfigError, Settings
from zenwatcher.sources import ALL_SOURCE_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zen-watcher",
        description=(
            "Turns Kyverno/openreports PolicyReports, trivy-operator reports, Falco alerts and "
            "Kubernetes audit events into Observation custom resources."
        ),
        epilog="Settings come from environment variables; see README.md for the table.",
    )
    parser.add_argument("--version", action="version", version=f"zen-watcher {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "run", help="run the daemon (webhooks on every pod; informers and GC on the leader)"
    )
    convert = commands.add_parser(
        "convert",
        help="map payload files to Observations without a cluster (JSON lines on stdout)",
        description=(
            "Runs the daemon's mapping and filters and prints one Observation per distinct "
            "finding as a JSON line, its status.count the number of times the input holds it "
            "(all input is one window: the daemon's time-based dedup window does not apply). "
            "Exit 2 when a file cannot be read or parsed."
        ),
    )
    convert.add_argument("--source", required=True, choices=ALL_SOURCE_NAMES)
    convert.add_argument(
        "--filter", metavar="FILE", help="filter.json to apply (docs/design.md §5)"
    )
    convert.add_argument(
        "--explain",
        action="store_true",
        help="for each finding a filter drops, say which value (and expression clause) did",
    )
    convert.add_argument(
        "--namespace",
        metavar="NS",
        default=None,
        help="namespace for findings without one (default: POD_NAMESPACE or zen-system)",
    )
    convert.add_argument("files", nargs="+", metavar="FILE", help="payload files ('-' = stdin)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and `python -m zenwatcher`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env(os.environ)
        if args.command == "run":
            settings.webhook.require_authentication()  # `convert` serves nothing
    except ConfigError as error:
        print(f"zen-watcher: {error}", file=sys.stderr)
        return 2
    if args.command == "convert":
        from zenwatcher.cli import convert  # noqa: PLC0415 - keeps `run` free of convert's imports

        return convert.convert_files(
            source=args.source,
            paths=args.files,
            filter_path=args.filter,
            namespace=args.namespace or settings.pod_namespace,
            ttl_seconds=settings.ttl_seconds,
            explain_drops=args.explain,
        )
    from zenwatcher import daemon  # noqa: PLC0415 - the daemon pulls in aiohttp and uvloop

    return daemon.main(settings)
