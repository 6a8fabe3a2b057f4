"""The HTTP API of the line service: `create_app(settings)` builds it.

The app (FastAPI, SQLAlchemy) is imported on first use, not with the package: commands that only read
`aoi.api.settings` (every `aoi` command registers `aoi serve`'s options) stay quick to start, and so
do the worker processes `aoi eval` spawns, which import the command-line module again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aoi.api.app import create_app
    from aoi.api.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from aoi.api.app import create_app

        return create_app
    if name == "ServiceSettings":
        from aoi.api.settings import ServiceSettings

        return ServiceSettings
    raise AttributeError(f"module 'aoi.api' has no attribute {name!r}")
