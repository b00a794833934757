"""bench/store_ops.py stays runnable: its quick mode times every operation on the store and on
moto's own server in one run."""

from __future__ import annotations

import pytest

from tests.bench.quick_run import quick_table


@pytest.mark.slow
def test_quick_store_ops_bench_prints_every_operation_next_to_moto() -> None:
    # GIVEN nothing running  WHEN the per-operation bench runs one round of 20 calls each
    # THEN each operation has a row with the store's figure and moto's beside it
    table = quick_table("bench.store_ops", "AWS calls: server CPU per call")
    for operation in ("GetItem:", "PutItem:", "UpdateItem", "BatchGetItem", "TransactWriteItems",
                      "ReceiveMessage", "DeleteMessageBatch", "PutObject", "GetObject"):
        assert operation in table, table
    assert table.count("moto: ") == 13, table
