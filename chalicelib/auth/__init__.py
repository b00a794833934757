"""Credentials: password hashing, access tokens (JWT) and personal API tokens."""
