"""The HTTP API of the line service: `create_app(settings)` builds it."""

from aoi.api.app import create_app
from aoi.api.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
