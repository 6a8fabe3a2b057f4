"""Serves the dashboard page and its static files from the same process as the API.

The dashboard is plain HTML + vanilla JS modules that talk to `/api/v1`, so there is nothing to build:
the files under `static/` ship inside the package and are served as they are. Only files directly in
`static/` are served (no sub-folders), which keeps path handling trivial and safe.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Explicit types: some platforms map .js to text/plain, which browsers refuse for ES modules.
_MEDIA_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

# The UI polls the API and must not run stale JS after an upgrade; files are small, so skip caching.
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard_index() -> FileResponse:
    """The single dashboard page; its views (live, review, board, stats) are switched client-side."""
    return FileResponse(STATIC_DIR / "index.html", media_type=_MEDIA_TYPES[".html"], headers=_NO_CACHE)


@router.get("/static/{filename}")
def dashboard_static(filename: str) -> FileResponse:
    """One file from `static/`. Names with a path separator or unknown extension are 404, never read."""
    path = STATIC_DIR / filename
    media_type = _MEDIA_TYPES.get(path.suffix.lower())
    if "/" in filename or "\\" in filename or filename.startswith(".") or media_type is None or not path.is_file():
        raise HTTPException(status_code=404, detail=f"no dashboard file named {filename!r}")
    return FileResponse(path, media_type=media_type, headers=_NO_CACHE)
