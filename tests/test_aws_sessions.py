"""One botocore session per process (chalicelib.aws): every model class's client, the
transaction connection and the chalicelib.aws clients are made from it, one at a time, with the
endpoints and credentials a fresh session would resolve."""

from __future__ import annotations

import importlib
import pkgutil
import threading
import time
from typing import Any

import pytest
from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model as PynamoModel

import chalicelib.models
from chalicelib import aws
from chalicelib.models.base import Model, transaction_connection


def _model_classes() -> list[type[PynamoModel]]:
    for module in pkgutil.iter_modules(chalicelib.models.__path__):
        importlib.import_module(f"chalicelib.models.{module.name}")
    found, pending = [], list(PynamoModel.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("chalicelib.models.") and cls is not Model:
            found.append(cls)
    return found


def _fresh(monkeypatch: pytest.MonkeyPatch, models: list[type[PynamoModel]]) -> None:
    """No model of `models` has a connection, chalicelib.aws has no client nor session; the
    clients made in the test are dropped at its end (the next tests make their own)."""
    for model in models:
        monkeypatch.setattr(model, "_connection", None)
    aws.reset_clients()
    transaction_connection.cache_clear()


@pytest.fixture(autouse=True)
def _forget_clients() -> Any:
    yield
    aws.reset_clients()
    transaction_connection.cache_clear()


def test_every_table_model_makes_its_client_from_the_shared_session(
        emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN every table model of chalicelib.models, none with a connection yet
    models = _model_classes()
    assert len(models) > 20
    not_shared = [m.__name__ for m in models if not issubclass(m, Model)]
    assert not_shared == [], f"derive these from chalicelib.models.base.Model: {not_shared}"
    _fresh(monkeypatch, models)
    # WHEN each makes its client, and so do the transaction connection and chalicelib.aws
    made = [m._get_connection().connection.client for m in models]
    made.append(transaction_connection().client)
    made += [aws.client(service) for service in ("dynamodb", "s3", "sqs")]
    # THEN all come from one botocore session: one loader, which parses a service model once
    assert len({id(c._loader) for c in made}) == 1
    assert len({id(c) for c in made}) == len(made)
    # AND they work against the emulator
    from chalicelib.models.accounts import User

    assert User.exists()


def test_clients_are_made_one_at_a_time_when_threads_race(
        emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.session

    # GIVEN a dozen model classes without a client, and client creation slowed down so that
    # unguarded creations from several threads would overlap
    models = _model_classes()[:12]
    _fresh(monkeypatch, models)
    original = botocore.session.Session.create_client
    inside, most, guard = [0], [0], threading.Lock()

    def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.02)
            return original(self, *args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(botocore.session.Session, "create_client", slow)
    start = threading.Barrier(len(models) + 3)
    made: list[Any] = []
    errors: list[BaseException] = []

    def use(make: Any) -> None:
        try:
            start.wait(timeout=30)
            made.append(make())
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    makers = [lambda m=m: m._get_connection().connection.client for m in models]
    makers += [lambda s=s: aws.client(s) for s in ("dynamodb", "s3", "sqs")]
    threads = [threading.Thread(target=use, args=(make,)) for make in makers]
    # WHEN they all make their clients at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # THEN every client was made, never two at the same time, all from one session
    assert errors == []
    assert len(made) == len(makers)
    assert most[0] == 1
    assert len({id(c._loader) for c in made}) == 1


class _Elsewhere(Model):
    class Meta:
        table_name = "a6hub-test-nowhere"  # never asked for
        host = "http://127.0.0.1:9"
        region = "eu-west-3"

    key = UnicodeAttribute(hash_key=True)


def test_endpoints_and_regions_resolve_as_a_fresh_session_would(
        emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the shared session made while AWS_ENDPOINT_URL points at the emulator
    _fresh(monkeypatch, [_Elsewhere])
    dynamodb = aws.client("dynamodb")
    assert dynamodb.meta.endpoint_url == emulator.url
    # WHEN a model names its own host and region THEN its client uses them (from the same session)
    elsewhere = _Elsewhere._get_connection().connection.client
    assert elsewhere.meta.endpoint_url == "http://127.0.0.1:9"
    assert elsewhere.meta.region_name == "eu-west-3"
    assert elsewhere._loader is dynamodb._loader
    # WHEN a service's endpoint variable is set and the clients are reset
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:7")
    aws.reset_clients()
    # THEN the next client reads it, from a new session; the other services still use the emulator
    assert aws.client("sqs").meta.endpoint_url == "http://127.0.0.1:7"
    assert aws.client("s3").meta.endpoint_url == emulator.url
    assert aws.client("s3")._loader is not dynamodb._loader
