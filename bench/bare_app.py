"""A bare Quart app under Hypercorn: the ceiling that bench/http_load.py compares this app with.

Usage: python bench/bare_app.py --port 8001
One GET route, `/`, returns a short constant string whatever the query, so it answers the same
URLs as the recommendation fragment. One worker (this process) on 127.0.0.1 until SIGTERM or
SIGINT, on the same asyncio loop and Hypercorn settings as `movierec serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart

app = Quart(__name__)


@app.get("/")
async def index() -> str:
    """A short constant answer; the query arguments are ignored."""
    return "ok"


async def serve_until_signalled(port: int) -> None:
    """Serve the app on 127.0.0.1:port until SIGTERM or SIGINT."""
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    # As in app/serve/config.py, so the two differ only by what the app does per request.
    config.accesslog = None
    config.include_server_header = False
    config.loglevel = "WARNING"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    asyncio.run(serve_until_signalled(options.port))


if __name__ == "__main__":
    main()
