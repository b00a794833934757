"""Typed settings for the API and the runner, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

# Stages where a missing or weak signing key is tolerated (never deployed).
DEVELOPMENT_STAGES = frozenset({"local", "test"})
MIN_JWT_KEY_BYTES = 32


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable service."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from e


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    stage: str
    table_prefix: str
    bucket: str
    jobs_queue_url: str
    jwt_issuer: str
    jwt_audience: str
    jwt_ttl_seconds: int
    bcrypt_rounds: int
    max_file_bytes: int
    max_upload_bytes: int
    max_project_bytes: int
    max_files_per_project: int
    max_request_bytes: int
    login_max_failures_per_account: int
    login_max_failures_per_client: int
    login_window_seconds: int
    default_page_size: int
    max_page_size: int
    commit_email_domain: str
    register_max_per_client: int
    register_window_seconds: int
    jobs_max_active_per_user: int
    jobs_max_active_per_project: int
    jobs_max_submits_per_minute: int
    max_artifact_bytes_per_project: int

    def table_name(self, short: str) -> str:
        return f"{self.table_prefix}{short}"


def table_prefix() -> str:
    """Prefix of every DynamoDB table name; needs nothing else from the environment."""
    stage = os.environ.get("A6HUB_STAGE", "local")
    return os.environ.get("A6HUB_TABLE_PREFIX", f"a6hub-{stage}-")


def bucket_name() -> str:
    """The data bucket; env only, so the runner (which holds no JWT key) can use storage."""
    stage = os.environ.get("A6HUB_STAGE", "local")
    return os.environ.get("A6HUB_BUCKET", f"a6hub-{stage}-data")


def jwt_secret() -> str:
    """A6HUB_JWT_SECRET, or in deployed stages the Secrets Manager secret A6HUB_JWT_SECRET_ID names.

    Read once per process (signing_key caches), so a Lambda container pays one call at its
    first request; boto3 is imported only then."""
    secret = os.environ.get("A6HUB_JWT_SECRET", "")
    secret_id = os.environ.get("A6HUB_JWT_SECRET_ID", "")
    if secret or not secret_id:
        return secret
    from chalicelib.aws import client

    return str(client("secretsmanager").get_secret_value(SecretId=secret_id).get("SecretString") or "")


def load_signing_key() -> str:
    """The JWT signing key, refused when missing, or when weak outside local/test stages.

    Kept apart from Settings: the runner uses Settings (limits, names) and must not hold it."""
    stage = os.environ.get("A6HUB_STAGE", "local")
    secret = jwt_secret()
    if stage not in DEVELOPMENT_STAGES:
        if len(secret.encode()) < MIN_JWT_KEY_BYTES:
            raise ConfigurationError(
                f"A6HUB_JWT_SECRET must hold at least {MIN_JWT_KEY_BYTES} bytes in stage {stage!r}"
            )
    elif not secret:
        raise ConfigurationError(
            "A6HUB_JWT_SECRET is not set; the local stack generates one (make run)"
        )
    return secret


@lru_cache(maxsize=1)
def signing_key() -> str:
    return load_signing_key()


def load_settings() -> Settings:
    stage = os.environ.get("A6HUB_STAGE", "local")
    rounds = _int("A6HUB_BCRYPT_ROUNDS", 12)
    if rounds < 12:
        raise ConfigurationError("A6HUB_BCRYPT_ROUNDS must be at least 12")
    return Settings(
        stage=stage,
        table_prefix=table_prefix(),
        bucket=bucket_name(),
        jobs_queue_url=os.environ.get("A6HUB_JOBS_QUEUE_URL", ""),
        jwt_issuer=os.environ.get("A6HUB_JWT_ISSUER", "a6hub"),
        jwt_audience=os.environ.get("A6HUB_JWT_AUDIENCE", "a6hub-api"),
        jwt_ttl_seconds=_int("A6HUB_JWT_TTL_SECONDS", 3600),
        bcrypt_rounds=rounds,
        max_file_bytes=_int("A6HUB_MAX_FILE_BYTES", 5 * 1024 * 1024),
        max_upload_bytes=_int("A6HUB_MAX_UPLOAD_BYTES", 100 * 1024 * 1024),
        max_project_bytes=_int("A6HUB_MAX_PROJECT_BYTES", 50 * 1024 * 1024),
        max_files_per_project=_int("A6HUB_MAX_FILES_PER_PROJECT", 1000),
        max_request_bytes=_int("A6HUB_MAX_REQUEST_BYTES", 8 * 1024 * 1024),
        login_max_failures_per_account=_int("A6HUB_LOGIN_MAX_FAILURES_PER_ACCOUNT", 10),
        login_max_failures_per_client=_int("A6HUB_LOGIN_MAX_FAILURES_PER_CLIENT", 50),
        login_window_seconds=_int("A6HUB_LOGIN_WINDOW_SECONDS", 900),
        default_page_size=_int("A6HUB_DEFAULT_PAGE_SIZE", 50),
        max_page_size=_int("A6HUB_MAX_PAGE_SIZE", 100),
        # Commits show <username>@<this> unless the user makes their email public; .invalid
        # (RFC 2606) never routes. A deployment sets its own no-reply domain.
        commit_email_domain=os.environ.get("A6HUB_COMMIT_EMAIL_DOMAIN",
                                           "users.noreply.a6hub.invalid"),
        register_max_per_client=_int("A6HUB_REGISTER_MAX_PER_CLIENT", 10),
        register_window_seconds=_int("A6HUB_REGISTER_WINDOW_SECONDS", 3600),
        # Queued + running jobs; each may hold a runner for its whole wall limit.
        jobs_max_active_per_user=_int("A6HUB_JOBS_MAX_ACTIVE_PER_USER", 5),
        jobs_max_active_per_project=_int("A6HUB_JOBS_MAX_ACTIVE_PER_PROJECT", 10),
        jobs_max_submits_per_minute=_int("A6HUB_JOBS_MAX_SUBMITS_PER_MINUTE", 30),
        max_artifact_bytes_per_project=_int("A6HUB_MAX_ARTIFACT_BYTES_PER_PROJECT",
                                            2 * 1024 * 1024 * 1024),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
