"""Change settings for one test: set A6HUB_* variables, drop the cached Settings, restore after.

Only the in-process app (the `api` fixture) sees the change; `live_server` read its environment
when it started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def settings_env(**values: str | int) -> Iterator[None]:
    from chalicelib.config import reload

    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: str(value) for name, value in values.items()})
    reload()
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        reload()
