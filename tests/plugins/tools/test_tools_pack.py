"""The tools pack: calculator (no eval), current_time, http_get behind an allowlist."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import armillary_tools
import pytest
from armillary_tools.calculator import CalculatorError, evaluate
from armillary_tools.web import host_allowed

from armillary._tools import ToolError
from armillary.testing import make_kernel


@pytest.mark.parametrize(("expression", "expected"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("2 ^ 10", 1024), ("7 // 2", 3), ("7 % 4", 3),
    ("-3 + +1", -2), ("sqrt(16)", 4), ("max(1, 5, 3)", 5), ("10 / 4", 2.5),
    ("round(pi, 2)", 3.14),
])
def test_calculator_evaluates_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')", "open('/etc/passwd')", "x + 1", "[1, 2]",
    "(1).__class__", "'a' * 3", "lambda: 1", "9 ** 9 ** 9", "1 / 0", "factorial(5000)",
    "sqrt(-1)", "1 +", "1e308*10", "-1e308*10", "1e308*10 - 1e308*10", "1e999",
])
def test_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expression)


async def test_calculator_tool_reports_errors_as_tool_errors() -> None:
    from armillary_tools.calculator import calculator

    assert (await calculator.invoke({"expression": "6*7"}))["result"] == 42
    with pytest.raises(ToolError) as info:
        await calculator.invoke({"expression": "import os"})
    assert info.value.code == "calculator_error"
    with pytest.raises(ToolError) as info:
        await calculator.invoke({"expression": "1e308*10"})
    assert info.value.code == "calculator_error" and "not a finite number" in info.value.detail


async def test_current_time_answers_in_the_asked_zone_and_refuses_unknown_zones() -> None:
    from armillary_tools.clock import current_time

    now = await current_time.invoke({"timezone": "Asia/Tokyo"})
    assert now["iso"].endswith("+09:00")
    with pytest.raises(ToolError):
        await current_time.invoke({"timezone": "Mars/Olympus"})


def test_http_get_is_off_without_an_allowlist() -> None:
    kernel = make_kernel({"tools": armillary_tools})
    assert set(kernel.registry.tools) == {"calculator", "current_time"}


def test_tools_named_in_disable_are_left_out() -> None:
    kernel = make_kernel({"tools": armillary_tools},
                         config={"plugins": {"tools": {"disable": ["current_time"]}}})
    assert set(kernel.registry.tools) == {"calculator"}


def test_allowlist_matches_exact_hosts_and_wildcard_subdomains() -> None:
    assert host_allowed("api.example.com", ["api.example.com"])
    assert host_allowed("en.wikipedia.org", ["*.wikipedia.org"])
    assert not host_allowed("wikipedia.org", ["*.wikipedia.org"])
    assert not host_allowed("evil.com", ["api.example.com"])
    assert not host_allowed("example.com.evil.com", ["example.com"])


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://localhost:1/elsewhere")
            self.end_headers()
            return
        body = b"hello from the test server"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_http_get_fetches_from_allowed_hosts_and_refuses_others(web_server: str) -> None:
    kernel = make_kernel({"tools": armillary_tools},
                         config={"plugins": {"tools": {"http_get_allowlist": ["127.0.0.1"]}}})
    http_get = kernel.registry.tools["http_get"][1]
    page = await http_get.invoke({"url": web_server + "/page"})
    assert page["status"] == 200 and page["text"] == "hello from the test server"
    with pytest.raises(ToolError) as info:
        await http_get.invoke({"url": web_server.replace("127.0.0.1", "localhost")})
    assert info.value.code == "host_not_allowed"
    with pytest.raises(ToolError) as info:  # a redirect to a host not allowed
        await http_get.invoke({"url": web_server + "/redirect"})
    assert info.value.code == "host_not_allowed"
