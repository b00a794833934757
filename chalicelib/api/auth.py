"""Routes: /api/v1/auth/* (accounts, sessions, personal API tokens)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import (
    client_address,
    json_response,
    list_response,
    page_request,
    parse_body,
    path_id,
    required_caller,
    route,
)
from chalicelib.openapi import Doc
from chalicelib.schemas.accounts import (
    AccessTokenPublic,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenPublic,
    PasswordChange,
    UserCreate,
    UserLogin,
    UserPublic,
    UserUpdate,
)
from chalicelib.services import accounts

bp = Blueprint(__name__)


@route(bp, "/register", methods=["POST"],
       doc=Doc("Register an account (a taken email is not confirmed: same answer, nothing "
               "stored; at most A6HUB_REGISTER_MAX_PER_CLIENT per client address and window)",
               UserCreate, UserPublic, auth="none", status=201, errors=(429,)))
def register() -> Response:
    request = bp.current_request
    data = parse_body(request, UserCreate)
    return json_response(accounts.register(data, client_address(request)), status=201)


@route(bp, "/login", methods=["POST"],
       doc=Doc("Log in: a bearer access token", UserLogin, AccessTokenPublic, auth="none", errors=(429,)))
def login() -> Response:
    request = bp.current_request
    data = parse_body(request, UserLogin)
    return json_response(accounts.login(data, client_address(request)))


@route(bp, "/me", doc=Doc("The calling user", response=UserPublic))
def me() -> Response:
    return json_response(accounts.user_public(required_caller(bp.current_request).user))


@route(bp, "/me", methods=["PATCH"],
       doc=Doc("Change my display name, or show my login email on my commits (`public_email`; "
               "default: a no-reply address)", UserUpdate, UserPublic))
def update_me() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    return json_response(accounts.update_me(caller, parse_body(request, UserUpdate)))


@route(bp, "/password", methods=["POST"],
       doc=Doc("Change password (a login session only; ends every session and revokes every "
               "personal API token)", PasswordChange, status=204, errors=(403, 429)))
def change_password() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    accounts.change_password(caller, parse_body(request, PasswordChange), client_address(request))
    return Response(body="", status_code=204)


@route(bp, "/tokens", methods=["POST"],
       doc=Doc("Create a personal API token (shown once)", ApiTokenCreate, ApiTokenCreated, status=201))
def create_token() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    return json_response(accounts.create_api_token(caller, parse_body(request, ApiTokenCreate)),
                         status=201)


@route(bp, "/tokens", doc=Doc("List my personal API tokens", response=ApiTokenPublic, is_list=True))
def list_tokens() -> Response:
    request = bp.current_request
    caller = required_caller(request)
    limit, cursor = page_request(request)
    page = accounts.list_api_tokens(caller, limit, cursor)
    return list_response(request, page.items, page, limit)


@route(bp, "/tokens/{token_id}", methods=["DELETE"],
       doc=Doc("Revoke a personal API token", status=204))
def revoke_token(token_id: str) -> Response:
    accounts.revoke_api_token(required_caller(bp.current_request), path_id(token_id))
    return Response(body="", status_code=204)
