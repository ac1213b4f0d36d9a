"""movierec: MovieLens recommendations served by Quart and htmx."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quart import Quart

    from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> Quart:
    """Build the app; only the real start reads the environment (tests pass `settings`).

    Imported here rather than at the top, so that importing a light module such as
    app.config does not load Quart, NumPy and pandas with this package.
    """
    from quart import Quart

    from app import logs, web
    from app.config import Settings
    from app.engine import Service
    from app.web.pages import results_fragment
    from app.web.shared import install_templates

    settings = settings or Settings.from_env()
    # Hypercorn workers are fresh processes: give the app's own log lines somewhere to go.
    logs.configure(settings.log_level, settings.log_format)
    app = Quart(
        __name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static")
    )
    access_log = settings.access_log or settings.log_level == "DEBUG"
    # The results fragment is rendered by the Service (in the thread that computes it) from
    # the app's one template environment.
    present = results_fragment(install_templates(app))
    service = Service(settings, present=present, encode=web.middleware.encode)
    web.install(app, service, settings.metrics_port, access_log)
    return app
