"""Cold start: importing the Lambda handler registers every route without loading the AWS SDK,
PynamoDB or the JWT/crypto stack; those load on the first request that needs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HEAVY = ("boto3", "botocore.client", "pynamodb", "jwt", "cryptography", "bcrypt", "s3transfer")

PROBE = f"""
import json, sys
HEAVY = {HEAVY!r}
import app
loaded = sorted(m for m in HEAVY if m in sys.modules)
routes = sum(len(v) for v in app.app.routes.values())
from chalicelib.services import projects
before = "pynamodb" in sys.modules
slug = projects.slugify("Hello World")
print(json.dumps({{"loaded": loaded, "routes": routes, "before": before,
                  "after": "pynamodb" in sys.modules, "slug": slug}}))
"""


def test_import_app_defers_the_heavy_modules() -> None:
    # GIVEN a fresh interpreter WHEN it imports the Lambda handler module
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**os.environ},
                         capture_output=True, text=True, timeout=60, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    # THEN every route is registered, none of the heavy modules is loaded yet
    assert probe["routes"] > 20
    assert probe["loaded"] == []
    # AND a service module loads on its first use and works
    assert probe["before"] is False
    assert probe["after"] is True
    assert probe["slug"] == "hello-world"


def test_a_deferred_service_forwards_reads_and_writes_to_the_real_module(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a stand-in for a service module, as `from chalicelib.services import x` binds it
    from chalicelib.services import _Deferred
    from chalicelib.services import paging as real

    stand_in = _Deferred("chalicelib.services.paging")
    # WHEN a test patches through it THEN the real module (the service's own calls) sees the patch
    monkeypatch.setattr(stand_in, "encode_cursor", lambda key: "patched")
    assert real.encode_cursor({"a": 1}) == "patched"
    assert stand_in.encode_cursor is real.encode_cursor
    monkeypatch.undo()
    assert real.encode_cursor({"a": {"S": "b"}}) != "patched"


def test_an_unknown_service_is_an_attribute_error() -> None:
    import chalicelib.services as services

    with pytest.raises(AttributeError):
        services.no_such_service  # noqa: B018
