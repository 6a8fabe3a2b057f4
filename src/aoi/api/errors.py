"""One JSON error shape for every 4xx/5xx: {"detail": "<readable message>", "error": "<code>"}.

`detail` is a plain sentence (what the dashboard shows); `error` is a stable code for scripts.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aoi.schema import InspectionInputError
from aoi.storage.database import is_disk_full, is_unavailable
from aoi.storage.images import ImageStoreError, ImageStoreFull

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with `status` and a clear message."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} with id {ident!r}")


def error_response(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "error": error}, status_code=status, headers=headers)


RETRY_AFTER_S = "1"  # a restarting database is back within seconds; a client retries with its Idempotency-Key
_STORAGE_FULL = (
    "the {what} is full (no space left on its disk): this request was not stored; retry it once space is freed"
)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form"))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            msg = "malformed JSON body: " + str(err.get("ctx", {}).get("error", msg))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "invalid request: " + "; ".join(parts) if parts else "invalid request"


# What every error answers, as OpenAPI declares it (in place of FastAPI's own 422 body, a list of
# pydantic errors, which this service never sends: `_validation` below turns them into one sentence).
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "detail": {"type": "string", "title": "Detail", "description": "a readable sentence"},
        "error": {"type": "string", "title": "Error", "description": "a stable code for scripts"},
    },
    "required": ["detail", "error"],
}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def document_error_shape(app: FastAPI) -> None:
    """Make /openapi.json describe the 422 body this service sends ({"detail": str, "error": str})."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI builds once and caches; the rewrite below is idempotent
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas.pop("HTTPValidationError")
            schemas.pop("ValidationError", None)
            schemas["Error"] = ERROR_SCHEMA
            _replace_ref(schema.get("paths", {}), _FASTAPI_422, "#/components/schemas/Error")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _replace_ref(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and value == old:
                node[key] = new
            elif key == "description" and value == "Validation Error":
                node[key] = "invalid request (a bad or missing value): {detail, error}"
            else:
                _replace_ref(value, old, new)
    elif isinstance(node, list):
        for item in node:
            _replace_ref(item, old, new)


def install_error_handlers(app: FastAPI) -> None:
    document_error_shape(app)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.error, exc.detail, headers)

    @app.exception_handler(InspectionInputError)
    async def _input_error(_request: Request, exc: InspectionInputError) -> JSONResponse:
        return error_response(422, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), detail)

    @app.exception_handler(ImageStoreError)
    async def _image_store(request: Request, exc: ImageStoreError) -> JSONResponse:
        if isinstance(exc, ImageStoreFull):
            log.error("%s %s: %s", request.method, request.url.path, exc)
            return error_response(507, "storage_full", _STORAGE_FULL.format(what="image store"))
        log.exception("image store error on %s %s", request.method, request.url.path)
        detail = "the image store cannot be written: this request was not stored; retry it later"
        return error_response(503, "storage_unavailable", detail, {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        """A database that is down, restarting or full is the server's state, not a bug: a 503 (or 507)
        the client retries, never a 500."""
        if is_disk_full(exc):
            log.error("%s %s: database disk full: %s", request.method, request.url.path, exc)
            return error_response(507, "storage_full", _STORAGE_FULL.format(what="results database"))
        if not is_unavailable(exc):
            return _internal_error(request, exc)
        cause = getattr(exc, "orig", None) or exc
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, cause)
        detail = (
            f"the results database is unavailable ({type(cause).__name__}); retry the request"
            " (with the same Idempotency-Key a retry never stores twice)"
        )
        return error_response(503, "database_unavailable", detail, {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(request, exc)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the server log")
