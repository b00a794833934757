"""/docs: Swagger UI from the swagger_ui_bundle package, through the gateway and over real HTTP."""

from __future__ import annotations

import re

import pytest
import requests
from swagger_ui_bundle import swagger_ui_path

from tests.conftest import Api

BROWSER_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_docs_page_loads_everything_from_this_server(api: Api, path: str) -> None:
    # WHEN the page is fetched, with or without the trailing slash
    reply = api.get(path, headers={"Accept": "text/html"})
    # THEN it is HTML whose scripts, styles and spec are URLs on this server (no CDN) that do
    # not depend on the page's own URL: /docs/ must not load /docs/docs/...
    assert reply.status == 200
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    page = reply.body.decode()
    assert 'src="/docs/swagger-ui-bundle.js"' in page
    assert 'href="/docs/swagger-ui.css"' in page
    assert 'url: "/openapi.json"' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    for url in re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r'url: "([^"]+)"', page):
        assert api.get(url, headers={"Accept": "*/*"}).status == 200, url


def test_docs_page_under_a_stage_prefix(api: Api) -> None:
    # GIVEN API Gateway serving the stage under /dev (the request context's path has it)
    from chalice.app import Request

    from chalicelib.api.health_docs import _stage_prefix

    for full, path in (("/dev/docs", "/docs"), ("/dev/docs/", "/docs"), ("/docs/", "/docs")):
        request = Request({"multiValueQueryStringParameters": None, "headers": {},
                           "pathParameters": None,
                           "requestContext": {"path": full, "httpMethod": "GET", "resourcePath": path},
                           "httpMethod": "GET", "body": None, "stageVariables": None,
                           "isBase64Encoded": False, "path": path, "resource": path})
        # THEN the page's URLs carry the prefix, with or without the slash
        assert _stage_prefix(request) == ("/dev" if full.startswith("/dev") else "")


@pytest.mark.parametrize(("name", "content_type"), [
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("swagger-ui-standalone-preset.js", "text/javascript; charset=utf-8"),
    ("swagger-ui.css", "text/css; charset=utf-8"),
])
def test_text_assets_are_served_as_text(api: Api, name: str, content_type: str) -> None:
    # WHEN a browser fetches an asset the page names (any Accept, as browsers send for scripts)
    reply = api.get(f"/docs/{name}", headers={"Accept": "*/*"})
    # THEN it is the package's file, byte for byte, with its text content type
    assert reply.status == 200
    assert reply.header("Content-Type") == content_type
    assert reply.body == (swagger_ui_path / name).read_bytes()


def test_text_assets_need_no_accept_header(api: Api) -> None:
    reply = api.get("/docs/swagger-ui.css", headers={"Accept": "text/css"})
    assert reply.status == 200


def test_images_are_binary_and_need_a_matching_accept(api: Api) -> None:
    # GIVEN a binary asset (API Gateway base64-encodes it, and Chalice sends it only when the
    # request's Accept names a binary type, as a browser's image request does)
    expected = (swagger_ui_path / "favicon-32x32.png").read_bytes()
    # WHEN fetched as a browser does THEN the bytes arrive intact
    reply = api.get("/docs/favicon-32x32.png", headers={"Accept": BROWSER_IMAGE_ACCEPT})
    assert reply.status == 200
    assert reply.header("Content-Type") == "image/png"
    assert reply.body == expected
    # WHEN fetched asking for JSON only THEN the gateway's rule answers 400 with a detail
    refused = api.get("/docs/favicon-32x32.png", headers={"Accept": "application/json"})
    assert refused.status == 400
    assert "Accept" in refused.json["detail"]


@pytest.mark.parametrize("name", ["index.j2", "swagger-ui-bundle.js.map", "..%2Fapp.py", "nope.js"])
def test_only_the_listed_assets_are_served(api: Api, name: str) -> None:
    reply = api.get(f"/docs/{name}", headers={"Accept": "*/*"})
    assert reply.status == 404
    assert reply.json == {"detail": "No such file"}


@pytest.mark.slow
def test_docs_over_real_http(live_server: str) -> None:
    # GIVEN the API served over HTTP as `make run` does, and one keep-alive session
    with requests.Session() as http:
        # WHEN a browser loads the page, its assets and the spec
        page = http.get(f"{live_server}/docs", timeout=10)
        slashed = http.get(f"{live_server}/docs/", timeout=10)
        script = http.get(f"{live_server}/docs/swagger-ui-bundle.js", timeout=10)
        icon = http.get(f"{live_server}/docs/favicon-32x32.png",
                        headers={"Accept": BROWSER_IMAGE_ACCEPT}, timeout=10)
        spec = http.get(f"{live_server}/openapi.json", timeout=10)
    # THEN each arrives whole with its content type
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert slashed.status_code == 200 and slashed.text == page.text
    assert 'src="/docs/swagger-ui-bundle.js"' in page.text
    assert script.status_code == 200
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert script.content == (swagger_ui_path / "swagger-ui-bundle.js").read_bytes()
    assert int(script.headers["Content-Length"]) == len(script.content)
    assert icon.status_code == 200 and icon.headers["Content-Type"] == "image/png"
    assert icon.content == (swagger_ui_path / "favicon-32x32.png").read_bytes()
    assert spec.status_code == 200 and spec.json()["openapi"] == "3.1.0"
