"""`armillary.redact_url` / `redact_text`: credentials in URLs are masked, nothing else."""

from __future__ import annotations

import httpx
import pytest

from armillary import redact_text, redact_url
from armillary._errors import ProviderTimeout, ProviderUnavailable
from armillary._provider_http import transport_error


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:SECRET@127.0.0.1:11434", "http://user:***@127.0.0.1:11434"),
    ("https://user:SECRET@host/v1/", "https://user:***@host/v1/"),
    ("http://TOKEN@host:8000/v1", "http://***@host:8000/v1"),
    ("http://user:p@ss:w@rd@host/x", "http://user:***@host/x"),
    ("http://user:@host", "http://user:***@host"),
    ("http://host/v1?api_key=SECRET&model=llama", "http://host/v1?api_key=***&model=llama"),
    ("http://host/?key=SECRET", "http://host/?key=***"),
    ("http://host?token=SECRET#frag", "http://host?token=***#frag"),
    ("http://host/p?Api-Key=SECRET&openai_key=SECRET&hf_token=SECRET&x=1",
     "http://host/p?Api-Key=***&openai_key=***&hf_token=***&x=1"),
    ("http://u:SECRET@host/p?access_token=SECRET", "http://u:***@host/p?access_token=***"),
])
def test_credentials_are_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "SECRET" not in redact_url(url) and "TOKEN" not in redact_url(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:11434", "https://api.openai.com/v1", "http://host/path/@me",
    "http://host/?model=llama3&stream=true", "http://host/?key=", "not a url", "",
    "http://[::1]:8000/v1",
])
def test_urls_without_credentials_are_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_every_url_in_free_text_is_masked() -> None:
    text = ("Client error '404 Not Found' for url 'http://user:SECRET@host/api/chat?key=K1'\n"
            "see http://TOKEN@other:1/x and https://ok.example/docs.")
    out = redact_text(text)
    assert "SECRET" not in out and "TOKEN" not in out and "K1" not in out
    assert "'http://user:***@host/api/chat?key=***'" in out
    assert "http://***@other:1/x" in out
    assert "https://ok.example/docs." in out
    assert redact_text("no urls here: user:pass") == "no urls here: user:pass"


def test_transport_error_masks_the_base_url_and_the_exceptions_own_text() -> None:
    url = "http://user:SECRET@127.0.0.1:9/v1?api_key=K1"
    request = httpx.Request("GET", url + "/models")
    refused = httpx.ConnectError(f"cannot reach {url}/models", request=request)
    error = transport_error(refused, provider="p", base_url=url, connect_timeout=1.0)
    assert isinstance(error, ProviderUnavailable)
    assert "SECRET" not in error.detail and "K1" not in error.detail
    assert error.detail.count("http://user:***@127.0.0.1:9/v1?api_key=***") == 2
    timeout = transport_error(httpx.ConnectTimeout("timed out", request=request), provider="p",
                              base_url=url, connect_timeout=1.0)
    assert isinstance(timeout, ProviderTimeout) and "SECRET" not in timeout.detail
    other = transport_error(httpx.UnsupportedProtocol(f"bad {url}", request=request),
                            provider="p", base_url=url, connect_timeout=1.0)
    assert "SECRET" not in other.detail and "user:***@" in other.detail
