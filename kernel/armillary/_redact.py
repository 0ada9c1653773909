"""Masking credentials in URLs before they reach a client, a stored error or a log.

`redact_url(url)` masks the password of `http://user:password@host` (and a bare token in
`http://token@host`) and the values of secret-looking query parameters (`?api_key=`,
`key=`, `token=`, ...). `redact_text(text)` does the same to every URL inside free text,
such as an httpx exception's message. Use them wherever a message is built from a
configured URL; keep the real URL only for the HTTP client itself.

    >>> redact_url("http://user:hunter2@gpu-box:11434/v1?api_key=abc&model=x")
    'http://user:***@gpu-box:11434/v1?api_key=***&model=x'
"""

from __future__ import annotations

import re

#: what a masked secret reads as
MASK = "***"

#: query parameters whose values are masked (compared lower-case, `-` read as `_`)
SECRET_PARAMS = frozenset({
    "key", "api_key", "apikey", "token", "access_token", "auth", "auth_token", "password",
    "passwd", "pwd", "secret", "client_secret", "sig", "signature", "code", "session",
    "x_api_key", "refresh_token", "id_token", "credential", "credentials",
})
#: ... and so are those whose name ends with one of these (`openai_key`, `hf_token`)
SECRET_SUFFIXES = ("_key", "_token", "_secret", "_password", "apikey")

#: a URL in free text: a scheme, `://`, then everything up to whitespace or a quote
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>`]+")


def _secret_param(name: str) -> bool:
    key = name.strip().lower().replace("-", "_")
    return key in SECRET_PARAMS or key.endswith(SECRET_SUFFIXES)


def _mask_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        parts.append(f"{name}={MASK}" if sep and value and _secret_param(name) else part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """`url` with its credentials masked: the password of the userinfo (a userinfo with
    no password is masked whole, as it is usually a token), and the values of
    secret-looking query parameters. Everything else is kept as written, so the message
    still says which host and path was meant. Text that is not a URL comes back as is."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # the authority ends at the first /, ? or #; a userinfo is what comes before its last @
    end = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if at != -1:
            end = min(end, at)
    authority, tail = rest[:end], rest[end:]
    userinfo, at_sign, host = authority.rpartition("@")
    if at_sign:
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    path, hash_sign, fragment = tail.partition("#")
    path, question, query = path.partition("?")
    if question:
        path = f"{path}?{_mask_query(query)}"
    return f"{scheme}://{authority}{path}{hash_sign}{fragment}"


def redact_text(text: str) -> str:
    """`text` with every URL in it passed through `redact_url` (an exception's message,
    a log line, an upstream's error text)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
