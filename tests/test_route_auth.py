"""Auth is declared once per route (its Doc): what /openapi.json says is what the route enforces.

For every (method, path) in the served document: a route whose security requires a scheme
answers 401 to an anonymous caller; a route that allows anonymous callers ({} in its security)
serves one (on a public project) yet refuses a forged token; a route with no security never
reads the token at all.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from chalice import Blueprint

from chalicelib.api.http import route
from chalicelib.openapi import Doc
from tests.conftest import Api, UserCtx, make_project

FORGED = "Bearer not-a-token"
_PARAM = re.compile(r"{([^}+]+)\+?}")


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


def _call(api: Api, method: str, path: str, op: dict[str, Any], project_id: int,
          authorization: str | None) -> int:
    """Call the route with every path parameter filled; `project_id` names a public project."""
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "project_id":
            return str(project_id)
        return "1" if name.endswith("_id") else "x"

    url = _PARAM.sub(fill, path)
    content = next(iter(op.get("requestBody", {}).get("content", {})), "application/json")
    headers = {"Content-Type": content}
    if authorization:
        headers["Authorization"] = authorization
    query = "?service=git-upload-pack" if path.endswith("/info/refs") else ""
    return api.request(method, url + query, headers=headers).status


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    reply = api.get("/openapi.json")
    assert reply.status == 200
    return dict(reply.json)


@pytest.fixture(scope="module")
def public_project(api: Api, owner: UserCtx) -> int:
    return int(make_project(api, owner, visibility="public")["id"])


def test_every_route_enforces_the_security_it_documents(
        api: Api, document: dict[str, Any], public_project: int) -> None:
    wrong = []
    required = optional = anonymous_only = 0
    for method, path, op in _operations(document):
        security = op["security"]
        anonymous = _call(api, method, path, op, public_project, None)
        forged = _call(api, method, path, op, public_project, FORGED)
        if security == []:
            anonymous_only += 1
            if forged == 401:
                wrong.append(f"{method} {path}: no security documented, but a token was read")
        elif {} in security:
            optional += 1
            if anonymous == 401 or forged != 401:
                wrong.append(f"{method} {path}: optional, anonymous {anonymous}, forged {forged}")
        else:
            required += 1
            if anonymous != 401 or forged != 401:
                wrong.append(f"{method} {path}: required, anonymous {anonymous}, forged {forged}")
    assert not wrong, wrong
    # every kind is exercised (a document that lost its security would pass trivially)
    assert required > 30 and optional > 15 and anonymous_only > 5, (required, optional, anonymous_only)


def test_git_routes_document_basic_and_bearer(document: dict[str, Any]) -> None:
    refs = document["paths"]["/api/v1/projects/{project_id}/git/info/refs"]["get"]
    push = document["paths"]["/api/v1/projects/{project_id}/git/git-receive-pack"]["post"]
    assert refs["security"] == [{}, {"basic": []}, {"bearer": []}]
    assert push["security"] == [{"basic": []}, {"bearer": []}]
    assert document["components"]["securitySchemes"]["basic"]["scheme"] == "basic"


def _takes_caller(caller: Any) -> None:
    return None


def _takes_body(caller: Any, body: Any) -> None:
    return None


def _takes_page(caller: Any, limit: int, cursor: str | None) -> None:
    return None


@pytest.mark.parametrize(("view", "doc", "said"), [
    (_takes_caller, Doc("probe", auth="none"), "auth='none'"),
    (_takes_body, Doc("probe"), "no request model"),
    (_takes_page, Doc("probe"), "not a list"),
])
def test_a_view_that_contradicts_its_declaration_is_refused(view: Any, doc: Doc, said: str) -> None:
    # GIVEN a view whose parameters ask for what its Doc does not declare
    # WHEN it is registered THEN registration fails (at import, not at the first request)
    with pytest.raises(TypeError, match=said):
        route(Blueprint(__name__), "/x", doc=doc)(view)
