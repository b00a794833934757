"""/openapi.json: generated from the route table and the pydantic models, valid OpenAPI 3.1."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from chalice import Blueprint, Chalice
from openapi_spec_validator import validate

from chalicelib.api import health_docs as meta
from chalicelib.api.http import route
from chalicelib.openapi import REF_TEMPLATE, Doc, build_document, undocumented
from chalicelib.schemas.files import FileCreate
from chalicelib.schemas.projects import ProjectCreate, ProjectPublic
from tests.conftest import Api


@pytest.fixture(scope="module")
def document(api: Api) -> dict[str, Any]:
    reply = api.get("/openapi.json")
    assert reply.status == 200
    assert reply.header("Content-Type") == "application/json"
    return dict(reply.json)


def test_document_is_valid_openapi_31(document: dict[str, Any]) -> None:
    # GIVEN the served document  WHEN it is validated  THEN it is OpenAPI 3.1 without errors
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_registered_route_has_a_doc_entry(chalice_app: Chalice) -> None:
    # GIVEN every (method, path) the Chalice app registered
    # THEN each one declared a Doc in its route(...) call
    missing = undocumented(meta.operations(chalice_app))
    assert not missing, (
        "routes without an OpenAPI entry; add doc=Doc(summary, RequestModel, ResponseModel, ...) "
        f"to their route(...) decorator: {missing}")


def test_every_registered_route_is_in_the_document(chalice_app: Chalice,
                                                   document: dict[str, Any]) -> None:
    # GIVEN the app's route table WHEN compared with the document's paths
    registered = {(path, method.lower()) for path, entries in chalice_app.routes.items()
                  for method in entries}
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    # THEN nothing is missing and nothing is invented
    assert registered == documented
    assert all(op["summary"] for ops in document["paths"].values() for op in ops.values())


def test_request_and_response_schemas_come_from_the_pydantic_models(document: dict[str, Any]) -> None:
    # GIVEN the model that parse_body() validates project creation with
    schemas = document["components"]["schemas"]
    create = document["paths"]["/api/v1/projects"]["post"]
    # THEN the request body is that model, with its rules (extra fields refused)
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProjectCreate"}
    assert schemas["ProjectCreate"] == ProjectCreate.model_json_schema(ref_template=REF_TEMPLATE)
    assert schemas["ProjectCreate"]["additionalProperties"] is False
    assert schemas["FileCreate"] == FileCreate.model_json_schema(ref_template=REF_TEMPLATE)
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProjectPublic"}
    assert set(schemas["ProjectPublic"]["required"]) == set(ProjectPublic.model_fields)


def test_lists_are_arrays_with_cursor_paging(document: dict[str, Any]) -> None:
    # GIVEN a list route
    op = document["paths"]["/api/v1/projects/public"]["get"]
    # THEN it answers an array, takes limit and cursor, and names the Link header
    ok = op["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/ProjectPublic"}}
    assert "Link" in ok["headers"]
    assert {p["name"] for p in op["parameters"]} == {"limit", "cursor"}


def test_security_says_which_routes_allow_anonymous_callers(document: dict[str, Any]) -> None:
    paths = document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # a token is required
    assert paths["/api/v1/auth/me"]["get"]["security"] == [{"bearer": []}]
    assert paths["/api/v1/projects"]["post"]["security"] == [{"bearer": []}]
    # anonymous or bearer (public projects are readable by anyone)
    assert paths["/api/v1/projects/{project_id}"]["get"]["security"] == [{}, {"bearer": []}]
    # no token read at all
    assert paths["/api/v1/auth/login"]["post"]["security"] == []
    assert paths["/health"]["get"]["security"] == []


def test_errors_use_the_detail_schema(document: dict[str, Any]) -> None:
    op = document["paths"]["/api/v1/projects/{project_id}/files/{file_id}"]["put"]
    responses = op["responses"]
    assert {"400", "401", "403", "404", "412", "413", "422"} <= set(responses)
    assert responses["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorPublic"}
    assert document["components"]["schemas"]["ErrorPublic"]["required"] == ["detail"]
    assert any(p["name"] == "If-Match" and p["in"] == "header" for p in op["parameters"])


def test_a_route_without_a_doc_entry_is_caught() -> None:
    # GIVEN an app with one documented route and one registered without a Doc
    bp = Blueprint(__name__)

    @route(bp, "/things", doc=Doc("List things", response=ProjectPublic, is_list=True))
    def list_things() -> list[Any]:
        return []

    @route(bp, "/things/{thing_id}", methods=["DELETE"])
    def forgot_the_doc(thing_id: str) -> None:
        return None

    app = Chalice(app_name="probe")
    app.register_blueprint(bp, url_prefix="/x")
    # WHEN the operations are collected and the document built
    ops = meta.operations(app)
    built = build_document(ops, title="probe", version="0")
    # THEN the forgotten route is named, and still present (flagged) in a valid document
    assert undocumented(ops) == ["DELETE /x/things/{thing_id} (forgot_the_doc)"]
    assert built["paths"]["/x/things/{thing_id}"]["delete"]["x-undocumented"] is True
    validate(built)


@pytest.mark.parametrize(("context_path", "expected"), [
    ("/openapi.json", ""),
    ("/dev/openapi.json", "/dev"),
])
def test_servers_follow_the_api_gateway_stage(context_path: str, expected: str) -> None:
    request: Any = SimpleNamespace(context={"path": context_path}, path="/openapi.json")
    assert meta._stage_prefix(request) == expected


def test_job_submission_documents_each_job_types_config_and_its_429(
        document: dict[str, Any]) -> None:
    from chalicelib.schemas.job_configs import CONFIG_MODELS

    # GIVEN POST .../jobs in the document
    submit = document["paths"]["/api/v1/projects/{project_id}/jobs"]["post"]
    ref = submit["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    job_create = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    # THEN config is documented per job type by the model that validates it
    branches = {b["properties"]["job_type"]["const"]: b["properties"]["config"]
                for b in job_create["oneOf"]}
    assert branches == {t: m.model_json_schema() for t, m in CONFIG_MODELS.items()}
    assert branches["simulation"]["required"] == ["testbench"]
    # AND the per-user / per-project caps' 429 is there with its Retry-After
    assert "Retry-After" in submit["responses"]["429"]["headers"]


def test_git_routes_taking_a_revision_or_path_parameter_document_their_422(
        document: dict[str, Any]) -> None:
    for path in ("/api/v1/projects/{project_id}/git/diff",
                 "/api/v1/projects/{project_id}/git/commits/{sha}/content"):
        assert "422" in document["paths"][path]["get"]["responses"], path
