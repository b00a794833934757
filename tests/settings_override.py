"""Change settings for one test: set A6HUB_* variables, drop the cached Settings, restore after.

Only the in-process app (the `api` fixture) sees the change; `live_server` read its environment
when it started. The context manager is devstack.environment.settings_env (the benches use it too).
"""

from __future__ import annotations

from devstack.environment import settings_env

__all__ = ["settings_env"]
