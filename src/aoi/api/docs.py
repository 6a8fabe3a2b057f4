"""API docs pages (Swagger UI at /docs, ReDoc at /redoc) that work on a line network with no internet.

FastAPI's own pages load their JavaScript, CSS, favicon and (ReDoc) fonts from public CDNs, so on an
air-gapped factory network they stay blank. Here the pages point at files served by this process,
taken from the `fastapi-offline` package (a wheel from PyPI that ships Swagger UI 5 and ReDoc 2).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"

# The only files served, with explicit types (the package's folder is not listed to the world).
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}

# Swagger UI would otherwise ask validator.swagger.io for a badge: a request that cannot leave the line.
_SWAGGER_PARAMETERS = {"validatorUrl": None}
_CACHE = {"Cache-Control": "max-age=86400"}  # versioned with the installed package; a day is safe
# The pages may load from this host only. ReDoc asks cdn.redoc.ly for its logo whatever its options; the
# policy stops that request in the browser (the logo hides itself) instead of letting it wait on the network.
_CSP_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",  # FastAPI's page starts Swagger UI from an inline script
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "worker-src 'self' blob:",
    "connect-src 'self'",
)
_SAME_HOST_ONLY = {"Content-Security-Policy": "; ".join(_CSP_DIRECTIVES)}


def install_offline_docs(app: FastAPI) -> None:
    """Adds /docs, /redoc and their assets. The app must be built with docs_url=None and redoc_url=None."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None, redoc_url=None: these pages replace FastAPI's")
    openapi_url = app.openapi_url or "/openapi.json"

    # URLs stay on this host; root_path keeps them right behind a reverse proxy that mounts the app lower.
    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} · API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )
        page.headers.update(_SAME_HOST_ONLY)
        return page

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} · API",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(_SAME_HOST_ONLY)
        return page

    @app.get(ASSETS_URL + "/{filename}", include_in_schema=False)
    def docs_asset(filename: str) -> FileResponse:
        media_type = ASSETS.get(filename)
        if media_type is None or not (ASSETS_DIR / filename).is_file():
            raise HTTPException(status_code=404, detail=f"no docs asset named {filename!r}")
        return FileResponse(ASSETS_DIR / filename, media_type=media_type, headers=_CACHE)
