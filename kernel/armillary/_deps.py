"""FastAPI dependencies for plugin routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket
from starlette.requests import HTTPConnection

from armillary._kernel import Kernel


async def get_kernel(connection: HTTPConnection) -> Kernel:
    """The running kernel (works for HTTP routes and WebSocket routes).

    Async on purpose: FastAPI runs sync dependencies in a worker thread, which would put a
    thread hop (and, on the first request, a thread pool) on every route's hot path."""
    kernel: Kernel = connection.app.state.kernel
    return kernel


KernelDep = Annotated[Kernel, Depends(get_kernel)]

__all__ = ["KernelDep", "Request", "WebSocket", "get_kernel"]
