"""Registration, login, password change and personal API tokens."""

from __future__ import annotations

import secrets
import time

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.auth.access_tokens import issue_access_token
from chalicelib.auth.passwords import hash_password, verify_password
from chalicelib.config import get_settings
from chalicelib.errors import BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized
from chalicelib.ids import with_new_id
from chalicelib.models.accounts import ApiToken, Unique, User
from chalicelib.models.base import transaction_connection, utcnow_iso
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
from chalicelib.services import ratelimit
from chalicelib.services.identity import API_TOKEN_PREFIX, Caller, hash_api_token
from chalicelib.services.paging import Page, decode_cursor, page_of


def email_key(email: str) -> str:
    return f"email#{email.lower()}"


def username_key(username: str) -> str:
    # Usernames are unique regardless of case: "Alice" and "alice" are one name.
    return f"username#{username.lower()}"


def commit_email(user: User) -> str:
    """The address the user's API commits carry: `<username>@<A6HUB_COMMIT_EMAIL_DOMAIN>`, or
    their login email if they chose to make it public (PATCH /auth/me)."""
    if user.public_email:
        return str(user.email)
    return f"{str(user.username).lower()}@{get_settings().commit_email_domain}"


def user_public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id, email=user.email, username=user.username, full_name=user.full_name,
        is_active=user.is_active, created_at=user.created_at,
        public_email=bool(user.public_email), commit_email=commit_email(user),
    )


def _cancelled(e: Exception, index: int) -> bool:
    """Whether a TransactWriteError's item at `index` (PynamoDB order) failed its condition."""
    if not isinstance(e, TransactWriteError):
        return False
    reasons = e.cancellation_reasons or []
    reason = reasons[index] if index < len(reasons) else None
    return reason is not None and reason.code == "ConditionalCheckFailed"


def update_me(caller: Caller, data: UserUpdate) -> UserPublic:
    """Change the caller's display name and whether commits show their login email."""
    user = caller.user
    changes = data.model_dump(exclude_unset=True)
    actions: list[Action] = []
    if "full_name" in changes:
        user.full_name = changes["full_name"]
        actions.append(User.full_name.remove() if user.full_name is None
                       else User.full_name.set(user.full_name))
    if changes.get("public_email") is not None:
        user.public_email = bool(changes["public_email"])
        actions.append(User.public_email.set(user.public_email))
    if actions:
        user.update(actions=actions, condition=User.id.exists())
    return user_public(user)


def _registration_window(client: str) -> ratelimit.Window:
    settings = get_settings()
    return ratelimit.Window(f"register#client#{ratelimit.client_key(client)}",
                            settings.register_max_per_client,
                            settings.register_window_seconds)


def register(data: UserCreate, client: str = "unknown") -> UserPublic:
    """Create an account; raises TooManyRequests past the per-client registration limit (each
    registration costs a bcrypt hash), BadRequest when the username is taken. The user's id is
    drawn until the transaction finds it free (the guards are checked first).

    A taken email is not confirmed: the answer is a 201 shaped like a real one (new id, the
    request's fields) but nothing is stored, so registration cannot tell anyone which
    addresses have accounts (login answers the same 401 for both too). Usernames are public
    (history, members), so a taken one is still reported.
    """
    wait = ratelimit.acquire([_registration_window(client)])
    if wait:
        raise TooManyRequests("Too many registrations from this address; try again later",
                              retry_after=wait)
    password_hash = hash_password(data.password, get_settings().bcrypt_rounds)
    user = with_new_id(lambda user_id: _register(data, password_hash, user_id),
                       lambda e: _cancelled(e, 2))
    return user_public(user)


def _register(data: UserCreate, password_hash: str, user_id: int) -> User:
    """Store the user with its guards; the unsaved user when the email is taken (see register)."""
    user = User(
        id=user_id, email=data.email, username=data.username, full_name=data.full_name,
        password_hash=password_hash, is_active=True, created_at=utcnow_iso(),
    )
    try:
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(Unique(email_key(data.email), owner_id=user.id),
                    condition=Unique.key.does_not_exist())
            tx.save(Unique(username_key(data.username), owner_id=user.id),
                    condition=Unique.key.does_not_exist())
            tx.save(user, condition=User.id.does_not_exist())
    except TransactWriteError as e:
        if _cancelled(e, 1):
            raise BadRequest("Username already registered") from e
        if _cancelled(e, 0):
            return user  # the email is taken: answer as if not, store nothing (see register)
        raise
    return user


def find_user_id(key: str) -> int | None:
    try:
        return int(Unique.get(key).owner_id)
    except Unique.DoesNotExist:
        return None


def _login_windows(email: str, client: str) -> list[ratelimit.Window]:
    settings = get_settings()
    return [
        ratelimit.Window(f"login#account#{email}", settings.login_max_failures_per_account,
                         settings.login_window_seconds),
        ratelimit.Window(f"login#client#{ratelimit.client_key(client)}",
                         settings.login_max_failures_per_client,
                         settings.login_window_seconds),
    ]


def login(data: UserLogin, client: str) -> AccessTokenPublic:
    settings = get_settings()
    windows = _login_windows(data.email, client)
    now = time.time()
    wait = ratelimit.acquire(windows, now)
    if wait:
        raise TooManyRequests("Too many failed login attempts; try again later", retry_after=wait)
    user_id = find_user_id(email_key(data.email))
    user = None
    if user_id is not None:
        try:
            user = User.get(user_id)
        except User.DoesNotExist:
            user = None
    if not verify_password(data.password, user.password_hash if user else None) or user is None:
        raise Unauthorized("Incorrect email or password")  # the attempt stays counted
    ratelimit.release(windows, now)
    if not user.is_active:
        raise Unauthorized("Account is disabled")
    return AccessTokenPublic(
        access_token=issue_access_token(settings, user.id, int(user.token_generation or 0)),
        expires_in=settings.jwt_ttl_seconds,
    )


def change_password(caller: Caller, data: PasswordChange, client: str) -> None:
    """Set a new password after checking the current one; raises Forbidden for a personal API
    token, TooManyRequests past the login limits, BadRequest for a wrong current password.

    The current password is a guess like a login's: it takes from the same per-account and
    per-client windows (a success gives the attempt back), or the route would be an unlimited
    oracle. Only a login session may change it: a leaked API token must not take the account.
    The change ends every session (token generation) and revokes every personal API token: a
    password change is what a user does after a leak, and tokens may have leaked with it.
    """
    if caller.via_api_token:
        raise Forbidden("A personal API token cannot change the password; log in to change it")
    user = caller.user
    windows = _login_windows(user.email, client)
    now = time.time()
    wait = ratelimit.acquire(windows, now)
    if wait:
        raise TooManyRequests("Too many failed password attempts; try again later", retry_after=wait)
    if not verify_password(data.current_password, user.password_hash):
        raise BadRequest("Current password is incorrect")  # the attempt stays counted
    ratelimit.release(windows, now)
    user.update(actions=[
        User.password_hash.set(hash_password(data.new_password, get_settings().bcrypt_rounds)),
        # Access tokens issued before the change stop working; this one's caller logs in again.
        User.token_generation.add(1),
    ])
    revoke_all_api_tokens(user.id)


def revoke_all_api_tokens(user_id: int) -> int:
    """Delete every personal API token of the user (a Query of the by_user index, batched
    deletes); returns how many."""
    revoked = 0
    with ApiToken.batch_write() as batch:
        for token in ApiToken.by_user.query(user_id):
            batch.delete(token)
            revoked += 1
    return revoked


def _token_public(token: ApiToken) -> ApiTokenPublic:
    return ApiTokenPublic(id=token.id, name=token.name, prefix=token.prefix,
                          created_at=token.created_at,
                          expires_at=None if token.expires_at is None else int(token.expires_at))


def create_api_token(caller: Caller, data: ApiTokenCreate) -> ApiTokenCreated:
    if caller.via_api_token:
        # A leaked token must not be able to outlive its revocation by minting others.
        raise Forbidden("A personal API token cannot create tokens; log in to create one")
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = None if data.expires_in_days is None else int(time.time()) + data.expires_in_days * 86400

    def create(token_id: int) -> ApiToken:
        token = ApiToken(
            hash_api_token(secret), id=token_id, user_id=caller.id, name=data.name,
            prefix=secret[:10], created_at=utcnow_iso(), expires_at=expires,
        )
        # The token table is keyed by the secret's hash; the id's guard item makes the id unique.
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(Unique(token_key(token_id), owner_id=caller.id),
                    condition=Unique.key.does_not_exist())
            tx.save(token, condition=ApiToken.token_hash.does_not_exist())
        return token

    token = with_new_id(create, lambda e: _cancelled(e, 0))
    return ApiTokenCreated(token=secret, **_token_public(token).model_dump())


def token_key(token_id: int) -> str:
    return f"token#{token_id}"


def list_api_tokens(caller: Caller, limit: int, cursor: str | None) -> Page[ApiTokenPublic]:
    start = decode_cursor(cursor, {"user_id": caller.id})
    result = ApiToken.by_user.query(caller.id, limit=limit, page_size=limit,
                                    last_evaluated_key=start)
    return page_of(result, (_token_public(t) for t in result))


def revoke_api_token(caller: Caller, token_id: int) -> None:
    found = list(ApiToken.by_user.query(caller.id, ApiToken.id == token_id, limit=1))
    if not found:
        raise NotFound("Token not found")
    with TransactWrite(connection=transaction_connection()) as tx:
        tx.delete(found[0])
        tx.delete(Unique(token_key(token_id), owner_id=caller.id))


def set_admin(identifier: str, admin: bool) -> int:
    """Grant or withdraw forum administration for the user with this email or username.

    An operator's action (`python -m devstack admin --grant <email|username>`, run with the
    stage's AWS environment); no API route reaches it. Returns the user id; raises NotFound.
    """
    user_id = find_user_id(email_key(identifier)) or find_user_id(username_key(identifier))
    if user_id is None:
        raise NotFound(f"no user with the email or username {identifier!r}")
    user = User.get(user_id, consistent_read=True)  # its version guards the update
    user.update(actions=[User.is_admin.set(True) if admin else User.is_admin.remove()])
    return user_id
