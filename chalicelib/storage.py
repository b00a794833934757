"""S3: every call the API and the runner make to it (file bodies, job logs and artifacts, the
git object store, uploads, the health probe). Keys are derived from ids, never from user paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chalicelib.aws import client
from chalicelib.config import bucket_name
from chalicelib.ids import new_id


def file_body_key(project_id: int, file_id: int) -> str:
    """A fresh key for one version of a file body; the metadata row points at the current one."""
    return f"projects/{project_id}/files/{file_id}/{new_id()}"


UPLOADS_PREFIX = "uploads/"


def upload_key(project_id: int, upload_id: int) -> str:
    """Where a presigned upload lands; S3 notifies the API of objects under UPLOADS_PREFIX."""
    return f"{UPLOADS_PREFIX}{project_id}/{upload_id}"


def project_prefix(project_id: int) -> str:
    return f"projects/{project_id}/"


def job_prefix(project_id: int, job_id: int) -> str:
    return f"jobs/{project_id}/{job_id}/"


def job_log_key(project_id: int, job_id: int, attempt: int) -> str:
    """Each attempt (claim) of a job writes its own keys: a runner that lost the job to another
    can never overwrite the new owner's log or artifacts."""
    return f"{job_prefix(project_id, job_id)}{attempt}/log.txt"


def job_artifact_key(project_id: int, job_id: int, attempt: int, name: str) -> str:
    """`name` comes from the runner's own artifact list (safe characters only), not from users."""
    return f"{job_prefix(project_id, job_id)}{attempt}/artifacts/{name}"


def job_stored_as(project_id: int, job_id: int, attempt: int,
                  summary: dict[str, Any] | None) -> tuple[int, int, int]:
    """(project id, job id, attempt) under whose keys a job's log and artifacts are stored: the
    job's own, or for a cache hit served when its pipeline started, those of the completed run
    it reuses (`summary.cache.stored_as = {project_id, job_id, attempt}`; services/pipelines/
    instant.py): a run of the same project, or for a fork, of the project it was forked from
    (older hits name no project_id: their own). Job bytes are deleted only with their project,
    so a fork's hit outlives its bytes only when the source project is deleted."""
    cache = (summary or {}).get("cache")
    if not isinstance(cache, dict) or cache.get("hit") is not True:
        return project_id, job_id, attempt
    stored = cache.get("stored_as")
    if not (isinstance(stored, dict) and isinstance(stored.get("job_id"), int)
            and isinstance(stored.get("attempt"), int)):
        return project_id, job_id, attempt
    source = stored.get("project_id", project_id)
    if not isinstance(source, int):
        return project_id, job_id, attempt
    return source, int(stored["job_id"]), int(stored["attempt"])


def get_range(key: str, start: int, length: int) -> tuple[bytes, int]:
    """Up to `length` bytes of `key` from `start`, and the object's size; (b"", 0) if absent."""
    s3 = client("s3")
    try:
        response = s3.get_object(Bucket=bucket_name(), Key=key,
                                 Range=f"bytes={start}-{start + length - 1}")
    except s3.exceptions.NoSuchKey:
        return b"", 0
    except s3.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") != "InvalidRange":
            raise
        head = s3.head_object(Bucket=bucket_name(), Key=key)
        return b"", int(head["ContentLength"])
    data: bytes = response["Body"].read()
    content_range = str(response.get("ContentRange") or "")
    total = int(content_range.rsplit("/", 1)[-1]) if "/" in content_range else start + len(data)
    return data, total


def put_bytes(key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
    client("s3").put_object(Bucket=bucket_name(), Key=key, Body=body,
                            ContentType=content_type)


def upload_file(key: str, path: Path, content_type: str) -> None:
    """Stream a local file to S3 (multipart when large)."""
    client("s3").upload_file(str(path), bucket_name(), key,
                             ExtraArgs={"ContentType": content_type})


def download_file(key: str, path: Path) -> None:
    """Stream an object to a local file (multipart when large)."""
    client("s3").download_file(bucket_name(), key, str(path))


def copy_object(source_key: str, target_key: str) -> None:
    """Copy an object within the bucket (server side; a cached job's artifacts)."""
    bucket = bucket_name()
    client("s3").copy_object(Bucket=bucket, Key=target_key,
                             CopySource={"Bucket": bucket, "Key": source_key})


def get_bytes(key: str) -> bytes:
    response = client("s3").get_object(Bucket=bucket_name(), Key=key)
    data: bytes = response["Body"].read()
    return data


def get_bytes_or_none(key: str) -> bytes | None:
    """The object's bytes, or None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        return get_bytes(key)
    except ClientError as e:
        if _missing(e):
            return None
        raise


def list_keys(prefix: str, limit: int | None = None) -> list[str]:
    """Keys under `prefix` in key order: all of them, or the first `limit` (one List call)."""
    if limit is not None:
        found = client("s3").list_objects_v2(Bucket=bucket_name(), Prefix=prefix,
                                             MaxKeys=limit).get("Contents", [])
        return [str(item["Key"]) for item in found]
    paginator = client("s3").get_paginator("list_objects_v2")
    return [str(item["Key"]) for page in paginator.paginate(Bucket=bucket_name(), Prefix=prefix)
            for item in page.get("Contents", [])]


def copy_key(source: str, target: str) -> None:
    """A server-side copy of one object within the bucket."""
    client("s3").copy_object(Bucket=bucket_name(), Key=target,
                             CopySource={"Bucket": bucket_name(), "Key": source})


def check_bucket() -> None:
    """Raise unless the bucket is reachable (the health probe)."""
    client("s3").head_bucket(Bucket=bucket_name())


def delete_keys(keys: Iterable[str]) -> None:
    batch: list[dict[str, Any]] = []
    for key in keys:
        batch.append({"Key": key})
        if len(batch) == 1000:
            _delete_batch(batch)
            batch = []
    if batch:
        _delete_batch(batch)


def _delete_batch(batch: list[dict[str, Any]]) -> None:
    client("s3").delete_objects(Bucket=bucket_name(),
                                Delete={"Objects": batch, "Quiet": True})


def delete_prefix(prefix: str) -> None:
    paginator = client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket_name(), Prefix=prefix):
        delete_keys(obj["Key"] for obj in page.get("Contents", []))


def presign_download(key: str, filename: str, expires: int = 300) -> str:
    url: str = client("s3").generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket_name(), "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"'},
        ExpiresIn=expires,
    )
    return url


def presign_upload(key: str, max_bytes: int, expires: int) -> dict[str, Any]:
    """A presigned POST for exactly `key`; S3 itself refuses a body over `max_bytes`."""
    post: dict[str, Any] = client("s3").generate_presigned_post(
        bucket_name(), key, Conditions=[["content-length-range", 1, max_bytes]],
        ExpiresIn=expires)
    return post


def object_size(key: str) -> int | None:
    """The object's size, or None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        head = client("s3").head_object(Bucket=bucket_name(), Key=key)
    except ClientError as e:
        if _missing(e):
            return None
        raise
    return int(head["ContentLength"])


def _missing(e: Exception) -> bool:
    """A ClientError that says the object does not exist (GET says NoSuchKey, HEAD a bare 404)."""
    code = getattr(e, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")
