"""Routes: /api/v1/auth/* (accounts, sessions, personal API tokens)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import (
    client_address,
    json_response,
    list_response,
    page_request,
    parse_body,
    required_caller,
    route,
)
from chalicelib.schemas.accounts import ApiTokenCreate, PasswordChange, UserCreate, UserLogin
from chalicelib.services import accounts

bp = Blueprint(__name__)


@route(bp, "/register", methods=["POST"])
def register() -> Response:
    data = parse_body(bp.current_request, UserCreate)
    return json_response(accounts.register(data), status=201)


@route(bp, "/login", methods=["POST"])
def login() -> Response:
    request = bp.current_request
    data = parse_body(request, UserLogin)
    return json_response(accounts.login(data, client_address(request)))


@route(bp, "/me")
def me() -> Response:
    return json_response(accounts.user_public(required_caller(bp.current_request).user))


@route(bp, "/password", methods=["POST"])
def change_password() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    accounts.change_password(caller, parse_body(request, PasswordChange))
    return Response(body="", status_code=204)


@route(bp, "/tokens", methods=["POST"])
def create_token() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    return json_response(accounts.create_api_token(caller, parse_body(request, ApiTokenCreate)),
                         status=201)


@route(bp, "/tokens")
def list_tokens() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    limit, cursor = page_request(request)
    page = accounts.list_api_tokens(caller, limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/tokens/{token_id}", methods=["DELETE"])
def revoke_token(token_id: str) -> Response:
    accounts.revoke_api_token(required_caller(bp.current_request), token_id)
    return Response(body="", status_code=204)
