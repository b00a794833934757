"""Use cases: each function takes a caller and plain values, returns records or raises DomainError.

`from chalicelib.services import projects` binds a module that is imported on first use: the
services pull in PynamoDB/botocore, boto3 and PyJWT/cryptography (~250 ms), which a Lambda cold
start should pay on the first request that needs them, not while the routes are registered.
`from chalicelib.services.projects import x` still imports at once. The `git` sub-package
(chalicelib/services/git/) binds its modules the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_deferred: dict[str, ModuleType] = {}


class _Deferred(ModuleType):
    """Stands in for a service module until an attribute is read, then delegates to it."""

    def __getattr__(self, attr: str) -> Any:
        # importlib's own module locks make concurrent first uses safe.
        return getattr(importlib.import_module(self.__name__), attr)

    # Writes and __dict__ go to the real module too, so a test's monkeypatch (which reads
    # __dict__ to restore) reaches the service's own calls and is undone cleanly.
    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        return importlib.import_module(self.__name__).__dict__

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(importlib.import_module(self.__name__), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(importlib.import_module(self.__name__), attr)


def lazy_submodules(package: str) -> Callable[[str], ModuleType]:
    """A module-level `__getattr__` for `package` that binds its submodules lazily (as above)."""

    def __getattr__(name: str) -> ModuleType:
        qualified = f"{package}.{name}"
        loaded = sys.modules.get(qualified)
        if loaded is not None:
            return loaded
        if name.startswith("__") or importlib.util.find_spec(qualified) is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        with _lock:
            return _deferred.setdefault(qualified, _Deferred(qualified))

    return __getattr__


__getattr__ = lazy_submodules(__name__)
