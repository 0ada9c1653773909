from __future__ import annotations

import ssl

from armillary._provider_http import tls_for


def test_plain_http_servers_load_no_ca_bundle() -> None:
    assert tls_for("http://127.0.0.1:11434") is False
    assert tls_for("HTTP://gpu-box:8000/v1") is False


def test_https_servers_share_one_verifying_context() -> None:
    first, second = tls_for("https://api.openai.com/v1"), tls_for("https://other.example/v1")
    assert isinstance(first, ssl.SSLContext)
    assert first is second
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname is True
