"""The API's settings: one typed, frozen `Settings`, read once from the environment.

Every `A6HUB_*` variable the API (and what the runner shares with it) reads is parsed here and
nowhere else; modules call `get_settings()` and read a field. A bad value fails loudly:
`ConfigurationError` names the variable and the value (the middleware then answers 503
"Service is not configured" and logs it), where earlier copies silently used the default.

Public names (the runner's own settings build on these for the values both share):

- `Settings` — the fields below; `Settings.table_name(short)` is a DynamoDB table's full name.
- `get_settings()` — the process's `Settings`, read on first use and cached.
- `reload()` — read the environment again (tests that change `A6HUB_*` call it; so does the
  autouse fixture in tests/conftest.py before and after every test). Returns the new `Settings`.
- `load_settings()` — a fresh `Settings` without touching the cache.
- `signing_key()` / `load_signing_key()` — the JWT key, kept out of `Settings` on purpose: the
  runner reads `Settings` and must not hold it.
- `table_prefix()`, `bucket_name()` — shorthands for `get_settings().table_prefix` / `.bucket`.
- `ConfigurationError` — the environment does not describe a runnable service.

Shared names: `stage` (A6HUB_STAGE, default "local"), `table_prefix` (A6HUB_TABLE_PREFIX,
default "a6hub-<stage>-"), `bucket` (A6HUB_BUCKET, default "a6hub-<stage>-data"),
`jobs_queue_url` (A6HUB_JOBS_QUEUE_URL), `upload_events_queue` ("a6hub-<stage>-upload-events").
Integers are decimal; booleans are one of 1/true/yes/on or 0/false/no/off (any case); an empty
variable means "unset".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

# Stages where a missing or weak signing key is tolerated (never deployed).
DEVELOPMENT_STAGES = frozenset({"local", "test"})
MIN_JWT_KEY_BYTES = 32
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# The streams of infra/resources.yaml; infra/api-merge.json points the deployed event source
# mappings at the resources stack's exports (chalice needs a value when it packages the app).
_STREAM_PLACEHOLDER = "arn:aws:dynamodb:us-east-1:000000000000:table/a6hub-{}/stream/packaged"


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable service."""


def _text(name: str, default: str) -> str:
    raw = os.environ.get(name, "").strip()
    return raw or default


def _int(name: str, default: int, minimum: int = 0) -> int:
    """A6HUB_* integer: unset or empty gives `default`; anything else must be an integer >= minimum."""
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from e
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be one of 1/true/yes/on or 0/false/no/off, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """What the API and the runner share; each field names its variable in `load_settings`."""

    stage: str
    table_prefix: str
    bucket: str
    jobs_queue_url: str
    upload_events_queue: str  # the queue S3 notifies (a name: chalice needs it at build time)
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
    max_git_bytes_per_project: int  # stored git objects, history included (services/git/quota.py)
    forum_max_writes: int  # per user and forum window
    forum_window_seconds: int
    import_timeout_seconds: int  # one git import, start to end
    import_max_pack_bytes: int  # compressed pack data one import may download
    import_max_per_hour: int  # imports a user may start per hour
    import_allow_private: bool  # imports may reach private addresses (local development only)
    webhook_timeout_seconds: int  # one webhook delivery attempt, connect to last byte read
    webhook_max_attempts: int  # attempts of one delivery before it is marked failed
    webhook_retry_seconds: int  # the first retry's delay; doubled each time (at most 900)
    public_url: str  # the API's public base URL, for links in webhook bodies ("" = paths only)
    waveform_cache_bytes: int  # FST the waveform reader keeps in /tmp
    ws_endpoint: str  # WebSocket management endpoint; "" = the event's own API
    jobs_stream_arn: str
    ws_connections_stream_arn: str
    log_level: str
    metrics_namespace: str

    def table_name(self, short: str) -> str:
        return f"{self.table_prefix}{short}"


def load_settings() -> Settings:
    """Read every setting from the environment now; ConfigurationError names a bad variable."""
    stage = _text("A6HUB_STAGE", "local")
    rounds = _int("A6HUB_BCRYPT_ROUNDS", 12)
    if rounds < 12:
        raise ConfigurationError("A6HUB_BCRYPT_ROUNDS must be at least 12")
    max_project_bytes = _int("A6HUB_MAX_PROJECT_BYTES", 50 * 1024 * 1024)
    return Settings(
        stage=stage,
        table_prefix=_text("A6HUB_TABLE_PREFIX", f"a6hub-{stage}-"),
        bucket=_text("A6HUB_BUCKET", f"a6hub-{stage}-data"),
        jobs_queue_url=_text("A6HUB_JOBS_QUEUE_URL", ""),
        # infra/resources.yaml names it the same way.
        upload_events_queue=f"a6hub-{stage}-upload-events",
        jwt_issuer=_text("A6HUB_JWT_ISSUER", "a6hub"),
        jwt_audience=_text("A6HUB_JWT_AUDIENCE", "a6hub-api"),
        jwt_ttl_seconds=_int("A6HUB_JWT_TTL_SECONDS", 3600, 1),
        bcrypt_rounds=rounds,
        max_file_bytes=_int("A6HUB_MAX_FILE_BYTES", 5 * 1024 * 1024, 1),
        max_upload_bytes=_int("A6HUB_MAX_UPLOAD_BYTES", 100 * 1024 * 1024, 1),
        max_project_bytes=max_project_bytes,
        max_files_per_project=_int("A6HUB_MAX_FILES_PER_PROJECT", 1000, 1),
        max_request_bytes=_int("A6HUB_MAX_REQUEST_BYTES", 8 * 1024 * 1024, 1),
        login_max_failures_per_account=_int("A6HUB_LOGIN_MAX_FAILURES_PER_ACCOUNT", 10, 1),
        login_max_failures_per_client=_int("A6HUB_LOGIN_MAX_FAILURES_PER_CLIENT", 50, 1),
        login_window_seconds=_int("A6HUB_LOGIN_WINDOW_SECONDS", 900, 1),
        default_page_size=_int("A6HUB_DEFAULT_PAGE_SIZE", 50, 1),
        max_page_size=_int("A6HUB_MAX_PAGE_SIZE", 100, 1),
        # Commits show <username>@<this> unless the user makes their email public; .invalid
        # (RFC 2606) never routes. A deployment sets its own no-reply domain.
        commit_email_domain=_text("A6HUB_COMMIT_EMAIL_DOMAIN", "users.noreply.a6hub.invalid"),
        register_max_per_client=_int("A6HUB_REGISTER_MAX_PER_CLIENT", 10, 1),
        register_window_seconds=_int("A6HUB_REGISTER_WINDOW_SECONDS", 3600, 1),
        # Queued + running jobs; each may hold a runner for its whole wall limit.
        jobs_max_active_per_user=_int("A6HUB_JOBS_MAX_ACTIVE_PER_USER", 5, 1),
        jobs_max_active_per_project=_int("A6HUB_JOBS_MAX_ACTIVE_PER_PROJECT", 10, 1),
        jobs_max_submits_per_minute=_int("A6HUB_JOBS_MAX_SUBMITS_PER_MINUTE", 30, 1),
        max_artifact_bytes_per_project=_int("A6HUB_MAX_ARTIFACT_BYTES_PER_PROJECT",
                                            2 * 1024 * 1024 * 1024, 1),
        max_git_bytes_per_project=_int("A6HUB_MAX_GIT_BYTES_PER_PROJECT",
                                       4 * max_project_bytes, 1),
        forum_max_writes=_int("A6HUB_FORUM_MAX_WRITES", 20, 1),
        forum_window_seconds=_int("A6HUB_FORUM_WINDOW_SECONDS", 60, 1),
        import_timeout_seconds=_int("A6HUB_IMPORT_TIMEOUT_SECONDS", 300, 1),
        import_max_pack_bytes=_int("A6HUB_IMPORT_MAX_PACK_BYTES", max_project_bytes, 1),
        import_max_per_hour=_int("A6HUB_IMPORT_MAX_PER_HOUR", 20, 1),
        import_allow_private=_bool("A6HUB_IMPORT_ALLOW_PRIVATE", False),
        webhook_timeout_seconds=_int("A6HUB_WEBHOOK_TIMEOUT_SECONDS", 10, 1),
        webhook_max_attempts=_int("A6HUB_WEBHOOK_MAX_ATTEMPTS", 4, 1),
        webhook_retry_seconds=_int("A6HUB_WEBHOOK_RETRY_SECONDS", 30, 0),
        public_url=_text("A6HUB_PUBLIC_URL", "").rstrip("/"),
        waveform_cache_bytes=_int("A6HUB_WAVEFORM_CACHE_BYTES", 384 * 1024 * 1024),  # /tmp: 512 MB
        ws_endpoint=_text("A6HUB_WS_ENDPOINT", "").rstrip("/"),
        jobs_stream_arn=_text("A6HUB_JOBS_STREAM_ARN", _STREAM_PLACEHOLDER.format("jobs")),
        ws_connections_stream_arn=_text("A6HUB_WS_CONNECTIONS_STREAM_ARN",
                                        _STREAM_PLACEHOLDER.format("wsconnections")),
        log_level=_text("A6HUB_LOG_LEVEL", "INFO").upper(),
        # powertools' own variable: the same namespace as its Metrics would use.
        metrics_namespace=_text("POWERTOOLS_METRICS_NAMESPACE", "a6hub"),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return load_settings()


def reload() -> Settings:
    """Forget the cached settings and signing key and read the environment again."""
    get_settings.cache_clear()
    signing_key.cache_clear()
    return get_settings()


def table_prefix() -> str:
    """Prefix of every DynamoDB table name."""
    return get_settings().table_prefix


def bucket_name() -> str:
    """The data bucket."""
    return get_settings().bucket


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
    stage = load_settings().stage
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
    """The JWT signing key, checked on first use and cached (see load_signing_key)."""
    return load_signing_key()
