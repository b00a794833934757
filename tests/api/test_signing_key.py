"""The signing key: the API serves nothing without a good one; the runner never needs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.config import get_settings, signing_key
from tests.conftest import Api


@pytest.fixture
def fresh_config() -> Iterator[None]:
    signing_key.cache_clear()
    get_settings.cache_clear()
    yield
    signing_key.cache_clear()
    get_settings.cache_clear()


@pytest.mark.parametrize("key", ["", "short-and-weak"])
def test_a_deployed_stage_without_a_strong_key_serves_nothing(
        api: Api, fresh_config: None, monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    # GIVEN a deployed stage whose key is missing or under 256 bits
    monkeypatch.setenv("A6HUB_STAGE", "prod")
    monkeypatch.setenv("A6HUB_JWT_SECRET", key)
    # WHEN anything is asked THEN it answers 503, not a response signed or checked with it
    for path in ("/health", "/api/v1/projects/public"):
        reply = api.get(path)
        assert reply.status == 503, (path, reply.body)
        assert reply.json == {"detail": "Service is not configured"}


def test_settings_load_without_the_key(fresh_config: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a process with no key at all (the runner)
    monkeypatch.delenv("A6HUB_JWT_SECRET")
    monkeypatch.delenv("A6HUB_JWT_SECRET_ID", raising=False)
    # THEN its settings (limits, names) load all the same
    assert get_settings().max_file_bytes > 0
