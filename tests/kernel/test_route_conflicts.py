"""Two plugins claiming one method and path stop startup with a message naming both."""

from __future__ import annotations

import pytest
from fastapi import APIRouter

from armillary import hookimpl
from armillary._errors import RegistrationError
from armillary.testing import make_app


def _plugin_with(method: str, path: str) -> object:
    router = APIRouter()
    router.add_api_route(path, lambda: {"ok": True}, methods=[method])

    class Plugin:
        @hookimpl
        def register_routers(self, register):  # type: ignore[no-untyped-def]
            register(router)

    return Plugin()


def test_two_plugins_claiming_get_agents_are_refused_naming_both() -> None:
    with pytest.raises(RegistrationError) as info:
        make_app({"first-agents": _plugin_with("GET", "/agents"),
                  "second-agents": _plugin_with("GET", "/agents")})
    message = str(info.value)
    assert "GET /agents" in message
    assert "'first-agents'" in message and "'second-agents'" in message


def test_the_real_agents_plugin_conflicts_with_another_get_agents() -> None:
    import armillary_agents

    with pytest.raises(RegistrationError, match=r"GET /agents.*'agents'.*'impostor'"):
        make_app({"agents": armillary_agents, "impostor": _plugin_with("GET", "/agents")})


def test_same_path_with_different_methods_is_not_a_conflict() -> None:
    app = make_app({"reader": _plugin_with("GET", "/things"),
                    "writer": _plugin_with("POST", "/things")})
    assert set(app.openapi()["paths"]["/things"]) == {"get", "post"}
