"""`create_app(config)`: the FastAPI app assembled from the enabled plugins."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from armillary._body_timeout import BodyReadTimeout
from armillary._config import Config, load_config
from armillary._errors import ArmillaryError, ErrorResponse, StartupError
from armillary._head import HeadAsGet
from armillary._kernel import Kernel, build_kernel
from armillary._registry import MiddlewareEntry

log = logging.getLogger("armillary")

#: codes for HTTP errors raised by FastAPI/Starlette themselves
_STATUS_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "rate_limited", 500: "internal_error", 503: "unavailable",
}


def error_response(status: int, detail: str, code: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code, **extra}, status_code=status)


def _field_message(err: dict[str, Any]) -> str:
    if err.get("type") == "json_invalid":  # FastAPI's: loc ("body", position)
        reason = (err.get("ctx") or {}).get("error") or err.get("msg", "invalid")
        position = [p for p in err.get("loc", ()) if isinstance(p, int)]
        at = f" at character {position[0]}" if position else ""
        return f"body: not valid JSON ({reason}{at})"
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
    return f"{loc}: {err.get('msg', 'invalid')}"


def _validation_detail(exc: RequestValidationError) -> str:
    return "; ".join(_field_message(e) for e in exc.errors()) or "invalid request"


#: what FastAPI raises (a 400, `from` the real cause) when a body cannot even be decoded
_UNPARSEABLE_BODY = "There was an error parsing the body"


def _unparseable(exc: StarletteHTTPException) -> JSONResponse | None:
    """A body FastAPI could not decode (not UTF-8, nested past the parser's depth) is a
    422 `validation_error` saying what is wrong, like any other malformed JSON."""
    cause = exc.__cause__
    if exc.status_code != 400 or exc.detail != _UNPARSEABLE_BODY or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        msg = f"not valid UTF-8 (byte 0x{cause.object[cause.start]:02x} at {cause.start})"
    elif isinstance(cause, RecursionError):
        msg = "JSON nested too deeply to parse"
    else:
        msg = f"cannot be parsed ({type(cause).__name__})"
    return error_response(422, f"body: {msg}", "validation_error",
                          errors=[{"loc": ["body"], "msg": msg, "type": "json_invalid"}])


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """Every method the routes serve at the scope's path. (The 405 Starlette raises names
    only the first route that matched the path, so `Allow` said GET where DELETE exists.)
    Each method is tried on a fresh scope through the public `matches`, which also sees
    into included routers."""
    allowed = []
    for method in _METHODS:
        probe: Scope = {"type": "http", "method": method, "path": scope["path"],
                        "root_path": scope.get("root_path", ""), "headers": [],
                        "query_string": b""}
        if any(route.matches(dict(probe))[0] is Match.FULL for route in routes):
            allowed.append(method)
    if "GET" in allowed and "HEAD" not in allowed:  # served by `HeadAsGet`
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    """One error model for every route: `{"detail": str, "code": str}` (`ErrorResponse`)."""

    @app.exception_handler(ArmillaryError)
    async def armillary_error(_: Request, exc: ArmillaryError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        unparseable = _unparseable(exc)
        if unparseable is not None:
            return unparseable
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allow = allowed_methods(request.app.router.routes, request.scope)
            if allow:
                headers["Allow"] = ", ".join(allow)
        if isinstance(exc.detail, dict) and "code" in exc.detail:
            return JSONResponse(exc.detail, status_code=exc.status_code, headers=headers)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse({"detail": detail, "code": code}, status_code=exc.status_code,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")}
                  for e in exc.errors()]
        return error_response(422, _validation_detail(exc), "validation_error", errors=errors)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        # the client hung up before its request body was read: nobody reads the answer,
        # and it is no server error
        log.info("client went away before the body of %s %s was read", request.method,
                 request.url.path)
        return error_response(400, "the client disconnected before its request body "
                              "was read", "client_disconnected")

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413 before a route reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        received = 0
        refused = False

        async def limited() -> Message:
            # past the limit: answer 413 now and tell the app the client went away
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # the app's own answer is dropped once 413 went out
                await send(message)

        await self.app(scope, limited, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"request body is larger than {self.max_bytes} bytes",
                                  "payload_too_large")
        await response(scope, receive, send)


class KernelLifespan:
    """Starts and stops the kernel with the server (the ASGI lifespan protocol).

    Done here rather than in a FastAPI lifespan so a failed start reaches the server as one
    clear sentence (`lifespan.startup.failed`) instead of a traceback."""

    def __init__(self, app: ASGIApp, kernel: Kernel) -> None:
        self.app = app
        self.kernel = kernel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.kernel.start()
                except Exception as exc:
                    log.debug("startup failed", exc_info=exc)
                    await self._stop_quietly()
                    reason = str(exc) if isinstance(exc, StartupError) else \
                        f"{type(exc).__name__}: {exc}"
                    await send({"type": "lifespan.startup.failed",
                                "message": f"armillary: cannot start: {reason}"})
                    # servers expect the app to raise after a failed startup (uvicorn then
                    # exits quietly; a TestClient raises instead of waiting forever)
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop_quietly()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _stop_quietly(self) -> None:
        try:
            await self.kernel.stop()
        except Exception:
            log.exception("error while stopping")


#: where the kernel's own middleware sits in `register_middleware`'s `order` (lower is
#: outer): the edge (CORS, 0-49) is outside it, so its 408 and 413 answers carry CORS
#: headers; the read timeout is outside the size limit, so a stalled body of any size
#: gets 408
KERNEL_MIDDLEWARE_ORDER = 50


def middleware_stack(kernel: Kernel) -> list[MiddlewareEntry]:
    """Every middleware, outermost first: by `order`, then hook order; the kernel's body
    limits go first among those at `KERNEL_MIDDLEWARE_ORDER`."""
    settings = kernel.config.kernel
    own = [MiddlewareEntry("kernel", HeadAsGet, {}, KERNEL_MIDDLEWARE_ORDER),
           MiddlewareEntry("kernel", BodyReadTimeout,
                           {"seconds": settings.body_read_timeout_seconds},
                           KERNEL_MIDDLEWARE_ORDER),
           MiddlewareEntry("kernel", BodySizeLimit, {"max_bytes": settings.max_body_bytes},
                           KERNEL_MIDDLEWARE_ORDER)]
    ranked = [(m.order, 0, i, m) for i, m in enumerate(own)]
    ranked += [(m.order, 1, i, m) for i, m in enumerate(kernel.registry.middleware)]
    return [m for *_, m in sorted(ranked, key=lambda r: r[:3])]


_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
#: statuses any route can answer, whoever registered it
_COMMON_ERRORS = {
    "422": "Invalid input (`validation_error`, with `errors`: one entry per problem), "
           "or a route's own check (e.g. `invalid_request`)",
    "408": "The body stopped arriving for `[kernel] body_read_timeout_seconds` "
           "(`request_timeout`)",
    "413": "The body is larger than `[kernel] max_body_bytes` (`payload_too_large`)",
    "500": "A bug (`internal_error`); the detail names only the exception type",
}


def document_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document describe the error model the server really sends: one
    `ErrorResponse` component for every 4xx/5xx answer (FastAPI's own 422 schema,
    `HTTPValidationError`, is not what goes out), and the statuses every route can give:
    422 when it takes input, 408 and 413 when it takes a body, 500 always."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    for item in doc.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
            for status, description in _COMMON_ERRORS.items():
                if (status == "422" and not takes_input) or \
                        (status in ("408", "413") and "requestBody" not in operation):
                    continue
                current = responses.setdefault(status, {"description": description})
                if current.get("description") == "Validation Error":  # FastAPI's default
                    current["description"] = description
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = {"application/json": {"schema": dict(_ERROR_REF)}}
    text = json.dumps(doc.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}" not in text:
            schemas.pop(name, None)
    return doc


def _install_openapi(app: FastAPI, kernel: Kernel) -> None:
    generate = app.openapi  # FastAPI's generator, which caches in app.openapi_schema

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = document_errors(generate())
            kernel.amend_openapi(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def assemble(kernel: Kernel) -> FastAPI:
    """Build the FastAPI app for an already-built kernel."""
    kernel.registry.resolve_routes()  # done by build_kernel; a no-op unless changed since

    from armillary import __version__

    app = FastAPI(title="Armillary", version=__version__)
    app.state.kernel = kernel
    install_error_handlers(app)
    _install_openapi(app, kernel)
    for entry in kernel.registry.routers:
        app.include_router(entry.router, prefix=entry.prefix,
                           tags=list(entry.tags) if entry.tags else None,
                           dependencies=entry.dependencies)
    # starlette wraps in reverse: the middleware added last is the outermost
    for mw in reversed(middleware_stack(kernel)):
        app.add_middleware(mw.cls, **mw.options)  # type: ignore[arg-type]
    app.add_middleware(KernelLifespan, kernel=kernel)
    return app


def create_app(config: Config | str | None = None) -> FastAPI:
    """Load config (a `Config`, a path, or the default lookup) and assemble the app."""
    if not isinstance(config, Config):
        config = load_config(config)
    return assemble(build_kernel(config))
