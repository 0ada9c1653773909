"""Two `armillary serve` processes sharing the local Redis enforce one limit per key."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from armillary.testing import ArmillaryServer

pytestmark = pytest.mark.redis

CONFIG = """
[kernel]
enable = ["auth", "ratelimit", "tasks"]
store = "memory://"

[plugins.auth]
keys = [{{ name = "alice", key = {{ "$env" = "ALICE_KEY" }} }}]

[plugins.ratelimit]
storage = "redis://127.0.0.1:6379/0"
key_prefix = "{prefix}"
classes = {{ read = {{ limit = "5/minute", methods = ["GET"] }} }}
"""


def test_two_instances_on_one_redis_share_each_keys_budget(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text(CONFIG.format(prefix=f"test-{uuid.uuid4().hex}"), encoding="utf-8")
    env = {"ALICE_KEY": "alice-key-0123456789"}
    headers = {"X-API-Key": "alice-key-0123456789"}
    with ArmillaryServer(config, env=env, log_path=tmp_path / "a.log") as a, \
            ArmillaryServer(config, env=env, log_path=tmp_path / "b.log") as b:
        codes = []
        for server in (a, b, a, b, a, b, a):
            codes.append(httpx.get(server.url + "/v1/tasks", headers=headers).status_code)
        assert codes == [200] * 5 + [429, 429]
        last = httpx.get(b.url + "/v1/tasks", headers=headers)
        assert last.json()["code"] == "rate_limited"
        assert last.headers["ratelimit-remaining"] == "0"
