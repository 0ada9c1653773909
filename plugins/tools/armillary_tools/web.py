"""http_get: fetch a URL, but only from hosts the settings allow."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from armillary import Tool, ToolError, build_tool


class HttpGetError(ToolError):
    code = "http_get_error"
    status_code = 502


def host_allowed(host: str, allowlist: list[str]) -> bool:
    """Exact host names; `*.example.com` also matches subdomains (not example.com itself)."""
    host = host.lower().rstrip(".")
    for entry in allowlist:
        entry = entry.lower()
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
        if host == entry:
            return True
    return False


def make_http_get(allowlist: list[str], *, timeout: float, max_bytes: int) -> Tool:
    async def http_get(url: str) -> dict[str, Any]:
        """Fetch a web page or API over HTTP(S) GET and return its status and text."""
        import httpx

        current = url
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            for _ in range(5):  # follow redirects ourselves: each hop must be allowed
                parts = urlsplit(current)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise HttpGetError(f"not an http(s) URL: {current!r}")
                if not host_allowed(parts.hostname, allowlist):
                    raise HttpGetError(f"host {parts.hostname!r} is not in the allowlist "
                                       f"({', '.join(allowlist)})", code="host_not_allowed")
                try:
                    async with client.stream("GET", current) as response:
                        if response.is_redirect and "location" in response.headers:
                            current = str(response.url.join(response.headers["location"]))
                            continue
                        body = b""
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) > max_bytes:
                                break
                        text = body[:max_bytes].decode(response.encoding or "utf-8", "replace")
                        return {"url": current, "status": response.status_code,
                                "content_type": response.headers.get("content-type"),
                                "truncated": len(body) > max_bytes, "text": text}
                except httpx.HTTPError as exc:
                    raise HttpGetError(f"GET {current} failed: {type(exc).__name__}: {exc}") \
                        from None
        raise HttpGetError("too many redirects")

    return build_tool(http_get, timeout=timeout + 1)
