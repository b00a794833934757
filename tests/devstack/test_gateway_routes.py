"""devstack/gateway.py remembers route matches per path; answers must not depend on what it saw before."""

from __future__ import annotations

import pytest

from devstack.gateway import _RememberingRouteMatcher

ROUTES = ["/health", "/api/v1/projects/public", "/api/v1/projects/{project_id}",
          "/api/v1/projects/{project_id}/files/{file_id}"]


def test_a_remembered_path_still_gets_its_own_query_and_fresh_parameters() -> None:
    matcher = _RememberingRouteMatcher(ROUTES)
    # GIVEN a path matched once, whose captured parameters a caller then changed
    first = matcher.match_route("/api/v1/projects/p1?limit=5")
    first.captured["project_id"] = "changed"
    # WHEN the same path comes again with another query
    second = matcher.match_route("/api/v1/projects/p1?cursor=abc&limit=")
    # THEN the route and parameters are right and the query is this request's own
    assert second.route == "/api/v1/projects/{project_id}"
    assert second.captured == {"project_id": "p1"}
    assert second.query_params == {"cursor": ["abc"], "limit": [""]}
    assert matcher.match_route("/api/v1/projects/p1").query_params == {}


def test_concrete_routes_win_and_unknown_paths_still_fail() -> None:
    matcher = _RememberingRouteMatcher(ROUTES)
    assert matcher.match_route("/api/v1/projects/public").route == "/api/v1/projects/public"
    assert matcher.match_route("/api/v1/projects/public/").route == "/api/v1/projects/public"
    for _ in range(2):
        with pytest.raises(ValueError):
            matcher.match_route("/nope/at/all")


def test_memory_is_bounded() -> None:
    matcher = _RememberingRouteMatcher(ROUTES)
    matcher.MAX_PATHS = 3
    for n in range(10):
        assert matcher.match_route(f"/api/v1/projects/p{n}").captured == {"project_id": f"p{n}"}
    assert len(matcher._by_path) == 3
