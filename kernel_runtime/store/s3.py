"""The S3 backend of :class:`~kernel_runtime.store.BlobStore`, for ``--store s3://bucket/prefix``.

Endpoint, region and credentials come from boto3's usual sources
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, profiles …), so any S3-compatible server works.
Exclusive creation uses a conditional write (``If-None-Match: *``): the
store itself arbitrates between racing publishers, also across replicas.

Timeouts are short and retries few on purpose (``settings.store.s3_*``): a store
that is down must turn into a prompt 503 (:class:`StoreUnavailable`), not a
request that hangs; boto3 opens new connections on the next call, so nothing
stays broken when the store comes back.
"""

from __future__ import annotations

import os
import re
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt

from ..errors import InvalidRequest, StoreUnavailable
from ..settings import StoreSettings
from .blob import BlobStore

BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)


def _conflict(exc: BaseException) -> bool:
    # 409: a concurrent conditional write was in flight; S3 asks to retry, and the
    # retry's If-None-Match then tells whether that other write won.
    return isinstance(exc, ClientError) and _code(exc) == "ConditionalRequestConflict"


class S3Store(BlobStore):
    def __init__(self, bucket: str, prefix: str = "", client: Any = None, settings: StoreSettings | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.settings = settings = settings or StoreSettings()
        config = Config(
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
            retries={"max_attempts": settings.s3_attempts, "mode": "standard"},
        )
        self.client = client or boto3.client("s3", config=config, region_name=_region())
        self.endpoint = self.client.meta.endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}"
        self._ensure_bucket()

    @classmethod
    def from_url(cls, url: str, settings: StoreSettings) -> "S3Store":
        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if not BUCKET_RE.fullmatch(bucket):
            raise InvalidRequest(
                f"Invalid S3 store URL {url!r}: write s3://bucket/prefix with a bucket name of "
                "3-63 lowercase letters, digits, dots and dashes."
            )
        return cls(bucket, prefix, settings=settings)

    def _ensure_bucket(self) -> None:
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._unavailable("create the bucket", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("create the bucket", exc) from exc

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _unavailable(self, action: str, exc: Exception) -> StoreUnavailable:
        if isinstance(exc, ClientError):
            reason = exc.response.get("Error", {}).get("Message") or _code(exc)
        else:
            reason = str(exc)
        return StoreUnavailable(
            f"The S3 store {self.url} at {self.endpoint} is unavailable: could not {action} ({reason})."
        )

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self._unavailable(f"read {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(f"read {key}", exc) from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise self._unavailable(f"look up {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(f"look up {key}", exc) from exc

    def put(self, key: str, data: bytes) -> None:
        # One PUT is atomic in S3: readers see the old object or the new one.
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(f"write {key}", exc) from exc

    def create(self, key: str, data: bytes) -> bool:
        retrying = Retrying(retry=retry_if_exception(_conflict), stop=stop_after_attempt(self.settings.s3_conflict_attempts))
        try:
            for attempt in retrying:
                with attempt:
                    self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
            return True
        except RetryError:
            raise StoreUnavailable(f"The S3 store {self.url} kept reporting conflicting writes to {key}; try again.") from None
        except ClientError as exc:
            if _code(exc) == "PreconditionFailed":
                return False
            raise self._unavailable(f"create {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(f"create {key}", exc) from exc

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(f"list {prefix or 'the store'}", exc) from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(f"delete {key}", exc) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _region() -> str:
    # boto3 needs some region to sign requests; S3-compatible servers usually ignore it.
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
