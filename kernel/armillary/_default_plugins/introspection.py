"""GET /v1/plugins: what is loaded and what each plugin registered."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from armillary import hookimpl
from armillary._deps import KernelDep
from armillary._hookspecs import RegisterRouter

router = APIRouter(tags=["plugins"])


@router.get("/v1/plugins")
async def list_plugins(kernel: KernelDep) -> dict[str, Any]:
    """Every installed plugin: name, distribution, version, status and registrations."""
    return {"plugins": [i.as_dict() for i in kernel.plugins],
            "default_provider": kernel.config.kernel.default_provider
            or kernel.registry.default_provider}


@hookimpl(trylast=True)
def register_routers(register: RegisterRouter) -> None:
    register(router)
