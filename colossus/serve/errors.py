"""Errors as the OpenAI API writes them, formatted in one place.

Every failure a client can cause answers 4xx with

    {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}

and the handlers below make sure nothing else escapes: an unknown route, a wrong method, FastAPI's own
validation, or (never expected) an exception from our code, which answers 500 with the same body and
no traceback. ErrorResponse is that body as the OpenAPI schema documents it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("colossus.serve")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
         429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class ErrorObject(BaseModel):
    message: str = Field(description="What went wrong, for a person to read.")
    type: str = Field(description="invalid_request_error, authentication_error, permission_error, "
                                  "rate_limit_error or server_error.", examples=["invalid_request_error"])
    param: str | None = Field(description="The request field at fault (dotted path, e.g. messages.0.role), "
                                          "or null.", examples=["temperature"])
    code: str | None = Field(description="A machine-readable reason (e.g. model_not_found, "
                                         "context_length_exceeded, model_loading), or null.")


class ErrorResponse(BaseModel):
    """Every error answer, as the OpenAI API writes it (also the data of an error event in a stream)."""

    error: ErrorObject


class APIError(Exception):
    """A failure answered with an OpenAI-style error body (status, message, type, param, code)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or TYPES.get(status, "invalid_request_error")
        self.headers = headers

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


REF = "#/components/schemas/"  # where the OpenAPI document keeps its schemas
ERRORS = {  # status: (when the routes answer it, the headers that come with it)
    400: ("The request is malformed, or a field is wrong or out of range: param names it.", {}),
    401: ("The key is missing or not one of the server's.", {"WWW-Authenticate": "Bearer"}),
    404: ("No such model, conversation or route.", {}),
    413: ("The body exceeds the server's limit (--max-body).", {}),
    429: ("Over the rate limit of the key (of the client address on an open server).",
          {"Retry-After": "Seconds to wait before retrying."}),
    503: ("The model is loading or failed to load, or the engine is full or failing: retry later.",
          {"Retry-After": "Seconds to wait before retrying (when retrying can help)."}),
}


def error_responses(*statuses: int) -> dict[str, dict]:
    """The OpenAPI response objects of these error statuses, for a route's `responses` (and for app.py's
    openapi_document, which adds ErrorResponse to the components). The body is JSON whatever the route's own
    media type, so the content is spelled out here rather than left to FastAPI."""
    out = {}
    for status in statuses:
        description, headers = ERRORS[status]
        out[str(status)] = {"description": description,
                            "content": {"application/json": {"schema": {"$ref": REF + ErrorResponse.__name__}}}}
        if headers:
            out[str(status)]["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                           for name, text in headers.items()}
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return APIError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None,
                        headers=getattr(exc, "headers", None)).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        return APIError(400, f"{param}: {err.get('msg')}" if param else str(err.get("msg")),
                        param=param or None).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return APIError(500, "internal error; the server log has the details").response()
