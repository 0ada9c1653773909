"""`GET /metrics` (the path is `[plugins.metrics] path`): the Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from armillary import KernelDep, ServiceUnavailable


def make_router(path: str) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get(path, response_class=Response, summary="Prometheus metrics",
                responses={200: {"content": {"text/plain": {}},
                                 "description": "Prometheus text exposition (OpenMetrics "
                                                "when the Accept header asks for it)"}})
    async def metrics(request: Request, kernel: KernelDep) -> Response:
        state = kernel.state.get("metrics")
        if state is None:
            raise ServiceUnavailable("metrics are not started")
        state.firehose.drain()  # what is queued already counts in this scrape
        body, content_type = state.metrics.exposition(request.headers.get("accept"))
        return Response(body, media_type=None, headers={"Content-Type": content_type})

    return router
