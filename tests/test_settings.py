"""Settings (chalicelib/config.py): one typed object read once; a bad value names its variable."""

from __future__ import annotations

import pytest

from chalicelib.config import ConfigurationError, get_settings, load_settings, reload
from tests.conftest import Api


@pytest.mark.parametrize(("name", "value", "said"), [
    ("A6HUB_FORUM_MAX_WRITES", "twenty", "must be an integer"),
    ("A6HUB_IMPORT_TIMEOUT_SECONDS", "0", "must be at least 1"),
    ("A6HUB_WAVEFORM_CACHE_BYTES", "-5", "must be at least 0"),
    ("A6HUB_IMPORT_ALLOW_PRIVATE", "maybe", "must be one of"),
    ("A6HUB_MAX_FILE_BYTES", "5MB", "must be an integer"),
])
def test_a_bad_value_is_refused_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, said: str) -> None:
    # GIVEN a variable whose value does not parse (earlier copies fell back to the default)
    monkeypatch.setenv(name, value)
    # WHEN the settings load THEN the error names the variable, the rule and the value
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert name in str(raised.value) and said in str(raised.value)


def test_the_api_serves_nothing_with_a_bad_value(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a bad value in the environment of a running API
    monkeypatch.setenv("A6HUB_FORUM_WINDOW_SECONDS", "a minute")
    with pytest.raises(ConfigurationError):
        reload()
    # WHEN anything is asked THEN it answers 503 rather than running on a guessed default
    reply = api.get("/api/v1/projects/public")
    assert reply.status == 503 and reply.json == {"detail": "Service is not configured"}


def test_values_are_read_once_until_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the settings as read
    before = get_settings()
    # WHEN the environment changes THEN nothing changes until reload()
    monkeypatch.setenv("A6HUB_FORUM_MAX_WRITES", str(before.forum_max_writes + 7))
    monkeypatch.setenv("A6HUB_IMPORT_ALLOW_PRIVATE", "off" if before.import_allow_private else "on")
    assert get_settings() is before
    after = reload()
    assert after.forum_max_writes == before.forum_max_writes + 7
    assert after.import_allow_private is not before.import_allow_private
    # AND the names that follow the stage follow it
    assert after.upload_events_queue == f"a6hub-{after.stage}-upload-events"
