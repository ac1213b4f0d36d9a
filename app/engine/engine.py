"""The Engine: one worker's serving state, the lifecycle that fills it, the watcher, the choice.

It composes the parts and holds no logic of its own: `ServingState` (what is served, at the
bottom), `Lifecycle` (the first map-or-build in a thread, the child `python -m app build`
for the rest, failure and retry), `Reloader` (switches to a newer snapshot, passes on
retries asked in other workers) and the pure functions of `choice`.
"""

from __future__ import annotations

from app.config import Settings
from app.engine.choice import Choice, check_algorithms, choose, choose_for_visitor
from app.engine.lifecycle import Lifecycle
from app.engine.model import Model
from app.engine.reload import Reloader
from app.engine.state import ServingState
from app.engine.status import AlgorithmStatus, State, Status
from app.recommender import DEFAULT_ALGORITHM


class Engine:
    """Loads and swaps in the model, has the rest built, and says which algorithm answers."""

    def __init__(self, settings: Settings) -> None:
        check_algorithms(settings)
        self.settings = settings
        self._state = ServingState()
        self._lifecycle = Lifecycle(settings, self._state)
        self._reloader = Reloader(
            settings, self._state, serve=self._lifecycle.serve, retry=self._lifecycle.retry
        )

    @property
    def status(self) -> Status:
        """The current status snapshot."""
        return self._state.status

    @property
    def ready(self) -> bool:
        """True once a model is being served."""
        return self._state.ready

    @property
    def generation(self) -> int:
        """Counts models swapped in: anything derived from an answer is stale once it changes."""
        return self._state.generation

    @property
    def model(self) -> Model:
        """The model being served; NotReady while there is none."""
        return self._state.model

    def start(self) -> None:
        """Load the model in the background and watch for newer snapshots."""
        self._lifecycle.start()
        self._reloader.start()

    def retry(self) -> None:
        """Try failed builds again now, here and, through DATA_DIR, in every other worker."""
        self._reloader.ask_retry()
        self._lifecycle.retry()

    async def stop(self) -> None:
        """Stop watching and cancel the builds (on shutdown)."""
        await self._reloader.stop()
        await self._lifecycle.stop()

    async def loaded(self, timeout: float) -> None:
        """Wait until a model is served or its load failed (TimeoutError after `timeout`)."""
        state = self._state
        await state.wait_until(lambda: state.ready or state.status.state is State.FAILED, timeout)

    async def settled(self, timeout: float) -> None:
        """Wait until every enabled algorithm is ready or unavailable, or the load failed."""
        await self._state.wait_until(self._state.settled, timeout)

    def algorithms(self) -> list[AlgorithmStatus]:
        """Every algorithm and whether it serves (all preparing until the model is ready)."""
        return list(self._state.availability().values())

    def default_algorithm(self) -> str:
        """What a request without an algorithm gets now: the best one that is ready."""
        if not self.ready:
            return DEFAULT_ALGORITHM
        return self.choose(None).algorithm.name

    def choose(self, name: str | None) -> Choice:
        """The algorithm that answers a request for `name` (None: the best ready one).

        UnknownAlgorithm, AlgorithmUnavailable (with the reason) or NotReady otherwise.
        """
        return choose(self._state.model, self._state.availability(), name)

    def choose_for_visitor(self, name: str | None, rating_count: int) -> Choice:
        """As choose(), but without `name` the visitor policy's pick for this many ratings."""
        return choose_for_visitor(self._state.model, self._state.availability(), name, rating_count)
