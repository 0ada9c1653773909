"""Armillary plugin `cors`: Starlette's `CORSMiddleware` in front of every plugin's
routes (outermost, `order=10`: the kernel's 408/413 and auth's 401 carry CORS headers,
and preflights are answered before auth asks for a key). Off unless enabled; settings
in `[plugins.cors]` (`armillary_cors.settings.CORSSettings`)."""

from __future__ import annotations

from typing import Any

from armillary import RegisterMiddleware, hookimpl
from armillary_cors.settings import CORSSettings

ORDER = 10


@hookimpl
def settings_model() -> type[CORSSettings]:
    return CORSSettings


@hookimpl
def register_middleware(register: RegisterMiddleware, settings: Any) -> None:
    from starlette.middleware.cors import CORSMiddleware

    register(CORSMiddleware, order=ORDER, allow_origins=settings.allow_origins,
             allow_origin_regex=settings.allow_origin_regex,
             allow_methods=settings.allow_methods, allow_headers=settings.allow_headers,
             expose_headers=settings.expose_headers,
             allow_credentials=settings.allow_credentials, max_age=settings.max_age)
