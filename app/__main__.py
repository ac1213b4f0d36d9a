"""`python -m app` and the `movierec` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import logs
from app.config import ALL_ALGORITHMS, SETTINGS, ConfigError, Settings, help_text
from app.serve import run as run_server

COMMANDS = ("serve", "build", "evaluate")
# The settings each command also takes as flags, which override the environment.
SETTING_FLAGS = {
    "serve": ("host", "port", "workers"),
    "build": ("algorithms", "source"),
    "evaluate": ("source",),
}
# Only what `serve` needs is imported above: its supervisor starts the workers sooner. The
# build and the evaluation import theirs when they run (pandas among them).


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command (serve by default)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*COMMANDS, "-h", "--help"):
        args.insert(0, "serve")
    parser = _parser(args[0])
    options = parser.parse_args(args)
    # Flags override the environment and go through the same parsers, so they are checked alike.
    declared = {setting.name: setting for setting in SETTINGS}
    flags = {
        declared[name].env: getattr(options, name)
        for name in SETTING_FLAGS[options.command]
        if getattr(options, name) is not None
    }
    environ = {**os.environ, **flags}
    try:
        settings = Settings.from_env(environ)
        if settings.algorithms != ALL_ALGORITHMS:
            # Only a list of names needs the registry: the engine is a second of imports
            # that `serve`'s supervisor would otherwise make before its fork server makes them.
            from app.engine import check_algorithms

            check_algorithms(settings)
    except ConfigError as exc:
        parser.error(str(exc))
    if options.command == "evaluate":
        return evaluate(settings, options, parser)
    if options.command == "build":
        return build(settings, options)
    return serve(settings)


def serve(settings: Settings) -> int:
    """Run Hypercorn in the foreground until SIGTERM or SIGINT, then stop gracefully."""
    # The settings go down as they are, parsed once here: the workers read no environment.
    return run_server(settings)


def build(settings: Settings, options: argparse.Namespace) -> int:
    """Fit every enabled algorithm and write one complete snapshot; print what it holds."""
    from app.data.movielens import DatasetError
    from app.engine.build import build_snapshot, enabled_algorithms
    from app.engine.estimate import estimate_fits, estimates_table
    from app.engine.manifest import manifest_table
    from app.progress import ProgressBar

    # A server's background build logs into the server's log, in the same format.
    logs.configure(settings.log_level, settings.log_format, "%(levelname)s %(name)s: %(message)s")
    names = enabled_algorithms(settings)
    # A server runs this in the background, its output going to the server's log: no bars.
    progress = ProgressBar() if sys.stderr.isatty() else _no_progress
    try:
        if options.dry_run:
            print(estimates_table(estimate_fits(settings, names, progress)))
            return 0
        manifest = build_snapshot(settings, names, options.out, progress)
    except DatasetError as exc:
        print(f"movierec build: {exc}", file=sys.stderr)
        return 1
    print(manifest_table(manifest))
    return 0


def _no_progress(what: str, done: int, total: int | None) -> None:
    pass


def evaluate(
    settings: Settings, options: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
    """Run the offline evaluation and print its table; reports go to --out."""
    from app.data.movielens import DatasetError
    from app.engine.choice import VISITOR_POLICY
    from app.evaluation.command import Options, candidates, run

    algorithms = tuple(name.strip() for name in options.algorithms.split(",") if name.strip())
    algorithms = algorithms or Options().algorithms
    try:
        original_ks = tuple(int(k) for k in options.original_k.split(",") if k.strip())
        candidates(algorithms, original_ks)
    except ValueError as exc:
        parser.error(str(exc))
    if options.n < 1 or options.visitors < 1 or any(k < 1 for k in original_ks):
        parser.error("--n, --visitors and --original-k need whole numbers of at least 1")
    if options.groups < 1:
        parser.error("--groups needs a whole number of at least 1")
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(
            settings,
            Options(
                split=options.split,
                n=options.n,
                algorithms=algorithms,
                original_ks=original_ks,
                seed=options.seed,
                out=options.out,
                visitors=options.visitors,
                policy=VISITOR_POLICY,
                groups=options.groups,
            ),
        )
    except DatasetError as exc:
        print(f"movierec evaluate: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser(command: str) -> argparse.ArgumentParser:
    """The command line; the evaluation's options only when `command` is evaluate."""
    parser = argparse.ArgumentParser(
        prog="movierec",
        description="MovieLens recommendations.",
        epilog=help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = _command(commands, "serve", "serve the web app and API (the default)")
    build_cmd = _command(
        commands,
        "build",
        "fit every enabled algorithm and write one complete snapshot that servers map",
    )
    build_cmd.add_argument(
        "--out", type=Path, help="folder for the snapshot (default DATA_DIR/snapshots)"
    )
    build_cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="print the memory and time each fit would need, and fit nothing",
    )
    evaluate_cmd = _command(
        commands,
        "evaluate",
        "offline evaluation of the algorithms; writes latest.json and latest.md",
    )
    if command == "evaluate":
        _evaluate_arguments(evaluate_cmd)
    for name, subparser in (("serve", serve_cmd), ("build", build_cmd)):
        _setting_arguments(subparser, name)
    return parser


def _command(commands: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with every setting (variable, default, meaning)."""
    subparser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return subparser


def _setting_arguments(subparser: argparse.ArgumentParser, command: str) -> None:
    """The flags of the settings `command` takes, each described by its declaration."""
    declared = {setting.name: setting for setting in SETTINGS}
    for name in SETTING_FLAGS[command]:
        setting = declared[name]
        subparser.add_argument(setting.flag, help=f"{setting.summary()} (env {setting.env})")


def _evaluate_arguments(evaluate_cmd: argparse.ArgumentParser) -> None:
    from app.evaluation.command import SPLITS, Options

    defaults = Options()
    evaluate_cmd.add_argument(
        "--split",
        choices=SPLITS,
        default=defaults.split,
        help="both: random and temporal; visitor: new visitors with 3-20 ratings; "
        "group: group lists for 2-6 members; all: every one",
    )
    # --k is the old name of --n, kept so that existing scripts still run.
    evaluate_cmd.add_argument(
        "--n", "--k", dest="n", type=int, default=defaults.n, help="list length (default 10)"
    )
    evaluate_cmd.add_argument(
        "--algorithms", default="", help="comma-separated algorithm names (default: all)"
    )
    evaluate_cmd.add_argument(
        "--original-k",
        default=",".join(map(str, defaults.original_ks)),
        help="neighbourhood sizes to evaluate the original at ('' for its default only)",
    )
    evaluate_cmd.add_argument(
        "--seed", type=int, default=defaults.seed, help="random split seed (42)"
    )
    evaluate_cmd.add_argument(
        "--visitors",
        type=int,
        default=defaults.visitors,
        help="users held out whole by --split visitor and group (150)",
    )
    evaluate_cmd.add_argument(
        "--groups",
        type=int,
        default=defaults.groups,
        help=f"groups of each kind drawn by --split group ({defaults.groups})",
    )
    evaluate_cmd.add_argument(
        "--out", type=Path, help="folder for latest.json and latest.md (DATA_DIR/evaluation)"
    )
    _setting_arguments(evaluate_cmd, "evaluate")


if __name__ == "__main__":
    sys.exit(main())
