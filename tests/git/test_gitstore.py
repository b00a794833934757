"""The repository storage: objects in S3 (buffered, then flushed), refs moved by compare-and-swap."""

from __future__ import annotations

import pytest
from dulwich.object_store import PackInputTooLarge
from dulwich.objects import Blob

from chalicelib.ids import new_number_id as new_id
from chalicelib.services.git import store as gitstore


@pytest.fixture
def cold_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitstore, "_cache", gitstore._ObjectCache(1024 * 1024))


def test_objects_are_buffered_until_flushed_then_read_back_from_s3(emulator: object,
                                                                   cold_cache: None) -> None:
    # GIVEN a store with one blob added but not flushed
    project_id = new_id()
    store = gitstore.S3ObjectStore(project_id)
    blob = Blob.from_string(b"module top; endmodule\n")
    store.add_object(blob)
    assert blob.id in store
    # THEN another store (another request) does not see it yet
    assert blob.id not in gitstore.S3ObjectStore(project_id)

    # WHEN it is flushed
    store.flush()

    # THEN another store reads it from S3, and another project does not see it
    gitstore._cache = gitstore._ObjectCache(1024 * 1024)
    other = gitstore.S3ObjectStore(project_id)
    assert other[blob.id].as_raw_string() == b"module top; endmodule\n"
    assert blob.id not in gitstore.S3ObjectStore(new_id())


def test_refs_move_only_from_the_value_the_writer_saw(emulator: object) -> None:
    # GIVEN an empty repository
    refs = gitstore.DynamoRefs(new_id())
    first, second, third = (Blob.from_string(bytes([n])).id for n in range(3))

    # WHEN main is created, then two writers move it from the same old value
    assert refs.add_if_new(gitstore.DEFAULT_BRANCH, first)
    assert not refs.add_if_new(gitstore.DEFAULT_BRANCH, second)
    assert refs.set_if_equals(gitstore.DEFAULT_BRANCH, first, second)
    assert not refs.set_if_equals(gitstore.DEFAULT_BRANCH, first, third)

    # THEN the first writer won and HEAD follows main
    assert refs[gitstore.HEAD] == second
    assert gitstore.DynamoRefs(refs.project_id)[gitstore.DEFAULT_BRANCH] == second


def test_a_pack_that_inflates_past_the_cap_is_refused(emulator: object) -> None:
    # GIVEN a store that may hold 1 KiB of new objects
    store = gitstore.S3ObjectStore(new_id())
    store.max_pending_bytes = 1024
    store.add_object(Blob.from_string(b"x" * 1000))
    # WHEN more arrives THEN it is refused and nothing stays buffered
    with pytest.raises(PackInputTooLarge):
        store.add_object(Blob.from_string(b"y" * 100))
    assert store.pending == []
