"""The watcher: one loop per worker that looks at DATA_DIR once a second.

It notices two things. A newer snapshot renamed into place (by this worker's child build,
another worker's, or a build job on another machine sharing DATA_DIR) is mapped and handed
to `serve`. A retry asked in any worker (POST /retry touches a marker file in DATA_DIR) is
handed to `retry`, so that every worker sharing DATA_DIR tries its failed builds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from app.data.snapshot import SnapshotError
from app.engine.build import MODEL_VERSION, map_snapshot
from app.engine.model import Model
from app.engine.state import ServingState, identity

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0
"""How often each worker looks for a newer snapshot and a retry asked elsewhere."""
RETRY_MARKER = ".retry-requested"
"""Touched in DATA_DIR by a retry; every worker's watcher sees it and tries again."""


class Reloader:
    """Switches to a newer snapshot when one appears, and passes on retries asked elsewhere."""

    def __init__(
        self,
        settings: Settings,
        state: ServingState,
        serve: Callable[[Model], None],
        retry: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.state = state
        self._serve = serve
        self._retry = retry
        self._marker = settings.data_dir / RETRY_MARKER
        self._asked = _modified(self._marker)
        self._watching: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (once)."""
        if self._watching is None or self._watching.done():
            self._asked = _modified(self._marker)
            loop = asyncio.get_running_loop()
            self._watching = loop.create_task(self._watch(), name="engine-watch")

    async def stop(self) -> None:
        """Stop watching."""
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching

    def ask_retry(self) -> None:
        """Tell every worker sharing DATA_DIR to retry (this one is told directly)."""
        with contextlib.suppress(OSError):  # an unwritable DATA_DIR may be what failed
            self._marker.parent.mkdir(parents=True, exist_ok=True)
            self._marker.write_text(str(time.time()))
        self._asked = _modified(self._marker)

    async def look(self) -> None:
        """Pass on a retry asked since the last look, and switch to a newer snapshot."""
        asked = _modified(self._marker)
        if asked != self._asked:
            self._asked = asked
            if asked is not None:
                self._retry()
        await self._switch_if_newer()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            await self.look()

    async def _switch_if_newer(self) -> None:
        """Map the snapshot file again if it is not the one being served."""
        if not self.state.ready:
            return
        model = self.state.model
        if model.path is None or model.manifest is None:
            return
        current = identity(model.path)
        if current is None or current == self.state.seen:
            return
        # Any intact snapshot of this release in this format will do, whatever download it
        # was built from: the build job that wrote it is the authority on the data (a new
        # ml-latest, a corrected zip), and the replicas follow it without a restart.
        expect = {"model_version": MODEL_VERSION}
        try:
            newer = await asyncio.to_thread(map_snapshot, self.settings, model.path, expect)
        except SnapshotError as exc:
            log.warning("Not switching to the new snapshot: %s", exc)
            self.state.seen = current
            return
        assert newer.manifest is not None
        log.info(
            "Switched to snapshot %s (built %s%s): %s",
            newer.manifest.build_id,
            newer.manifest.built_at,
            "" if newer.manifest.source == model.manifest.source else ", from new data",
            ", ".join(newer.algorithms),
        )
        self._serve(newer)


def _modified(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
