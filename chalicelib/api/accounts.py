"""Routes: /api/v1/auth/* (accounts, sessions, personal API tokens)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api.http import client_address, route
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
from chalicelib.services.paging import Page

if TYPE_CHECKING:
    from chalicelib.services.identity import Caller

bp = Blueprint(__name__)


@route(bp, "/register", methods=["POST"],
       doc=Doc("Register an account (a taken email is not confirmed: same answer, nothing "
               "stored; at most A6HUB_REGISTER_MAX_PER_CLIENT per client address and window)",
               UserCreate, UserPublic, auth="none", status=201, errors=(429,)))
def register(body: UserCreate) -> UserPublic:
    return accounts.register(body, client_address(bp.current_request))


@route(bp, "/login", methods=["POST"],
       doc=Doc("Log in: a bearer access token", UserLogin, AccessTokenPublic, auth="none", errors=(429,)))
def login(body: UserLogin) -> AccessTokenPublic:
    return accounts.login(body, client_address(bp.current_request))


@route(bp, "/me", doc=Doc("The calling user", response=UserPublic))
def me(caller: Caller) -> UserPublic:
    return accounts.user_public(caller.user)


@route(bp, "/me", methods=["PATCH"],
       doc=Doc("Change my display name, or show my login email on my commits (`public_email`; "
               "default: a no-reply address)", UserUpdate, UserPublic))
def update_me(caller: Caller, body: UserUpdate) -> UserPublic:
    return accounts.update_me(caller, body)


@route(bp, "/password", methods=["POST"],
       doc=Doc("Change password (a login session only; ends every session and revokes every "
               "personal API token)", PasswordChange, status=204, errors=(403, 429)))
def change_password(caller: Caller, body: PasswordChange) -> None:
    accounts.change_password(caller, body, client_address(bp.current_request))


@route(bp, "/tokens", methods=["POST"],
       doc=Doc("Create a personal API token (shown once)", ApiTokenCreate, ApiTokenCreated, status=201))
def create_token(caller: Caller, body: ApiTokenCreate) -> ApiTokenCreated:
    return accounts.create_api_token(caller, body)


@route(bp, "/tokens", doc=Doc("List my personal API tokens", response=ApiTokenPublic, is_list=True))
def list_tokens(caller: Caller, limit: int, cursor: str | None) -> Page[ApiTokenPublic]:
    return accounts.list_api_tokens(caller, limit, cursor)


@route(bp, "/tokens/{token_id}", methods=["DELETE"],
       doc=Doc("Revoke a personal API token", status=204))
def revoke_token(caller: Caller, token_id: int) -> None:
    accounts.revoke_api_token(caller, token_id)
