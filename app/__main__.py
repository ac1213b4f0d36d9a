"""`python -m app` and the `movierec` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from app.config import ConfigError, Settings

COMMANDS = ("serve",)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command (serve by default)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*COMMANDS, "-h", "--help"):
        args.insert(0, "serve")
    parser = _parser()
    options = parser.parse_args(args)
    # Flags override the environment and go through the same parsers, so they are checked alike.
    flags = {"HOST": options.host, "PORT": options.port, "WORKERS": options.workers}
    environ = {**os.environ, **{name: value for name, value in flags.items() if value is not None}}
    try:
        settings = Settings.from_env(environ)
    except ConfigError as exc:
        parser.error(str(exc))
    return serve(settings)


def serve(settings: Settings) -> int:
    """Run Hypercorn in the foreground until SIGTERM or SIGINT, then stop gracefully."""
    from hypercorn.run import run

    from app.server import hypercorn_config, serve_until_signalled

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Workers re-read the environment in create_app(); pass the command-line overrides on.
    os.environ.update(HOST=settings.host, PORT=str(settings.port), WORKERS=str(settings.workers))
    config = hypercorn_config(settings)
    if settings.workers > 1:
        # Hypercorn's parent process turns SIGTERM into a shutdown event for every worker.
        return run(config)
    # One worker runs in this process, so in a container it is PID 1 and gets SIGTERM itself.
    asyncio.run(serve_until_signalled(config))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="movierec", description="MovieLens recommendations.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve the web app and API (the default)")
    serve_cmd.add_argument("--host", help="address to listen on (env HOST)")
    serve_cmd.add_argument("--port", help="port to listen on (env PORT)")
    serve_cmd.add_argument("--workers", help="Hypercorn worker processes (env WORKERS)")
    return parser


if __name__ == "__main__":
    sys.exit(main())
