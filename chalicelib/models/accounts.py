"""Accounts: users, uniqueness guards, personal API tokens, login-attempt counters.

Access patterns:
- user by id: GetItem users[id]
- user by email / username: GetItem uniques["email#<email>"] -> user id -> GetItem users
- slug per owner, path per project: GetItem/conditional Put on uniques (guard items written in
  the same transaction as the thing they guard)
- token by secret: GetItem tokens[sha256(secret)]
- token id taken?: the guard item uniques["token#<id>"], written with the token
- tokens of a user: Query tokens.by_user[user_id]
- login failures in the current window: GetItem/Update ratelimits[key] (TTL expires them)
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex

from chalicelib.models.base import IdAttribute, Model, table_name


class User(Model):
    class Meta:
        table_name = table_name("users")

    id = IdAttribute(hash_key=True)
    email = UnicodeAttribute()
    username = UnicodeAttribute()
    full_name = UnicodeAttribute(null=True)
    password_hash = UnicodeAttribute()
    is_active = BooleanAttribute(default=True)
    created_at = UnicodeAttribute()
    # Access tokens carry the generation they were issued in; a password change bumps it, so
    # every older token stops working at once (an `iat` cut-off in whole seconds would let a
    # token issued in the same second as the change live on).
    token_generation = NumberAttribute(default=0)
    # Forum moderator and category administrator. Set only by an operator
    # (`python -m devstack admin`); no API route writes it.
    is_admin = BooleanAttribute(null=True)
    # Whether commits made through the API show the login email (else a no-reply address).
    public_email = BooleanAttribute(null=True)
    version = VersionAttribute()


class Unique(Model):
    """A guard item: its key is taken exactly once (email, username, slug, file path)."""

    class Meta:
        table_name = table_name("uniques")

    key = UnicodeAttribute(hash_key=True)
    owner_id = IdAttribute()  # the user, project or file the key belongs to


class TokensByUser(GlobalSecondaryIndex["ApiToken"]):
    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user_id = IdAttribute(hash_key=True)
    id = IdAttribute(range_key=True)


class ApiToken(Model):
    class Meta:
        table_name = table_name("tokens")

    token_hash = UnicodeAttribute(hash_key=True)
    id = IdAttribute()
    user_id = IdAttribute()
    name = UnicodeAttribute()
    prefix = UnicodeAttribute()
    created_at = UnicodeAttribute()
    expires_at = NumberAttribute(null=True)
    by_user = TokensByUser()


class RateCounter(Model):
    class Meta:
        table_name = table_name("ratelimits")

    key = UnicodeAttribute(hash_key=True)
    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
