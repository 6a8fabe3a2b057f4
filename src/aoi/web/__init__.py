"""The operator dashboard: static HTML, CSS and JS modules served by the API process (no build step)."""

from aoi.web.router import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
