"""The S3-compatible backend (AWS S3, SeaweedFS, MinIO...): objects under ``s3://BUCKET/PREFIX``, via boto3.

Needs the ``s3`` extra (``pip install 'musicstore[s3]'``). Endpoint, region and credentials are the
arguments, else ``$AWS_ENDPOINT_URL``, ``$AWS_REGION`` (or ``$AWS_DEFAULT_REGION``), ``$AWS_ACCESS_KEY_ID``,
``$AWS_SECRET_ACCESS_KEY``, ``$AWS_SESSION_TOKEN``, else boto3's own chain (``~/.aws``, instance roles). The
secret and the token are registered with ``musicstore.masking``: no error message shows them.

A put is whole or nothing: one PUT, or a multipart upload that is completed only when every part is in (and
aborted on any failure), so the key never holds a part. Unless ``overwrite``, the request carries
``If-None-Match: *`` and the server refuses it (412) when the key exists, whoever put it. A conditional put
goes in one PUT up to S3's 5 GiB limit, streamed from a file (memory stays bounded): SeaweedFS (4.48)
checks the condition of a single PUT under its per-object write lock, but that of a multipart completion
outside it (check, then write), and two racing completions both won in 6 of 20 three-way races here. Only
an overwriting put above ``multipart_threshold``, or a conditional one above 5 GiB (where only a server
that checks completions atomically, as AWS S3 does, keeps the guarantee), uses multipart.

The SHA-256 of the bytes is computed before the upload and kept as user metadata ``sha256`` (a large source
is read twice: hashed, then sent; a source that cannot seek back is spooled to a temp file first, memory
stays bounded); each request also carries a SHA-256 the server checks (``x-amz-checksum-sha256``, per part
for multipart). Reads hash the stream and compare at its end.

boto3's client is thread-safe: the async API calls these methods through ``asyncio.to_thread``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import IO, Any, cast

from .. import validate
from ..errors import InvalidInput, StorageError, shown
from ..masking import S3_LOGGERS, mask_logs, redact
from ..storage_names import MAX_KEY_BYTES, check_checksum, check_key, check_prefix
from .base import (
    CHECKSUM_FIELD,
    CHUNK_SIZE,
    PRESIGNED_METHODS,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    Opened,
    Source,
    StoreUnavailable,
    Upload,
    check_chunk_size,
    check_expiry,
    check_metadata,
    check_overwrite,
    check_upload,
    check_url_method,
    content_type_for,
    verified,
)
from .bodies import Window, b64, prepare
from .s3_errors import code, refuse_redirects
from .s3_parts import MultipartPuts
from .s3_settings import (
    DEFAULT_PART,
    DEFAULT_THRESHOLD,
    MIN_PART,
    answered,
    check_endpoint,
    check_settings,
    configured_endpoint,
    mask_found,
)

MAX_SINGLE_PUT = 5 << 30
"""S3's largest single PUT: a conditional put goes in one PUT up to this size (see the module)."""
MAX_ATTEMPTS = 100
"""The most attempts ``max_attempts`` asks of botocore for one request."""
CONNECT_TIMEOUT_SECONDS = 10
"""How long one attempt waits for the endpoint to take its connection."""
READ_TIMEOUT_SECONDS = 60
"""How long one attempt waits for the endpoint's next bytes (its answer, or more of a body being read): an
endpoint that takes connections and never answers fails each attempt after this (``StoreUnavailable`` once
every attempt did)."""
BRIEF_CONNECT_SECONDS = 2
BRIEF_READ_SECONDS = 5
"""How long the one attempt of a cleanup request made under a lock (``S3FileStore._briefly``: the ``HEAD``
and ``DELETE`` after an export's put of unknown outcome) waits to connect, and for the answer."""


CUSTOM_ENDPOINT: Any = {"addressing_style": "path", "use_accelerate_endpoint": False}
"""The client's ``s3`` settings for an endpoint of the user's, over the config file's: addressed by path, and
never S3 Transfer Acceleration (which botocore refuses to combine with a custom endpoint: every request
failed)."""


class S3FileStore(MultipartPuts):
    """Objects in ``bucket`` under ``prefix`` (``""`` or ending with ``/``)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        multipart_threshold: int = DEFAULT_THRESHOLD,
        part_size: int = DEFAULT_PART,
        max_attempts: int = 4,
    ) -> None:
        max_attempts = validate.integer(
            max_attempts, "max_attempts", 1, MAX_ATTEMPTS
        )  # botocore's TypeError, its own error
        settings = check_settings(
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            multipart_threshold=multipart_threshold,
            part_size=part_size,
        )
        import boto3
        from botocore.config import Config

        endpoint_url, region = settings["endpoint_url"], settings["region"]
        access_key_id = settings["access_key_id"]
        secret_access_key, session_token = settings["secret_access_key"], settings["session_token"]
        self.bucket, self.prefix = bucket, prefix
        self.url = f"s3://{bucket}/{prefix}"
        self.endpoint_url = endpoint_url
        self.multipart_threshold, self.part_size = settings["multipart_threshold"], settings["part_size"]
        self.single_put_limit = MAX_SINGLE_PUT
        config = Config(
            signature_version="s3v4",
            s3=CUSTOM_ENDPOINT if endpoint_url else {"addressing_style": "auto"},
            retries={"total_max_attempts": max_attempts, "mode": "standard"},  # attempts in all
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

        def client(config: Config) -> Any:
            made = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                aws_session_token=session_token,
                config=config,
            )
            if endpoint_url:  # AWS itself redirects with the bucket's region, which botocore follows
                refuse_redirects(made)
            return made

        try:
            self._client = client(config)
        except Exception as exc:  # botocore's ValueError for a malformed endpoint URL...
            raise StorageError(f"cannot make an S3 client for {self.url}: {redact(str(exc))}") from exc
        configured = configured_endpoint(self._client) if endpoint_url is None else None
        if configured is not None:  # the config file's: made again as one given (path-style, no redirects)
            self._client.close()
            check_endpoint(configured, self.url)
            endpoint_url = self.endpoint_url = configured
            config = config.merge(Config(s3=CUSTOM_ENDPOINT))
            self._client = client(config)
        self._config, self._made = config, client  # for _briefly's client, made on its first use only
        self._brief: S3FileStore | None = None
        self._closed = False  # close() called: no client is made any more (_briefly)
        mask_found(secret_access_key, self._client)  # a profile's or a role's token, resolved by the client
        mask_logs(*S3_LOGGERS)  # its loggers exist now: their DEBUG records quote headers and the endpoint

    def __repr__(self) -> str:
        shown = None if self.endpoint_url is None else redact(self.endpoint_url)
        return f"S3FileStore({self.url!r}, endpoint_url={shown!r})"

    def __enter__(self) -> S3FileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True  # before _brief is read: a _briefly racing this close sees one or the other
        self._client.close()
        brief = self._brief
        if brief is not None and brief is not self:
            brief.close()

    def _briefly(self) -> S3FileStore:
        """This store making one attempt per request, waiting at most ``BRIEF_CONNECT_SECONDS`` to connect
        and ``BRIEF_READ_SECONDS`` for an answer: for a cleanup made while a lock is held (``base.briefly``),
        which must not hold it through every retry of an endpoint that is down. Its client is made on the
        first call (on that path only) and kept; ``close`` closes it. After ``close``: ``InvalidInput`` (a
        client made then would never be closed)."""
        self._refuse_closed()
        brief = self._brief
        if brief is None:
            from botocore.config import Config

            brief = copy.copy(self)
            once = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=min(BRIEF_CONNECT_SECONDS, CONNECT_TIMEOUT_SECONDS),
                read_timeout=min(BRIEF_READ_SECONDS, READ_TIMEOUT_SECONDS),
            )
            try:
                brief._client = self._made(self._config.merge(once))
            except Exception as exc:  # as __init__'s: the same settings made the first client
                raise StorageError(f"cannot make an S3 client for {self.url}: {redact(str(exc))}") from exc
            brief._brief = brief
            if self._brief is None:
                self._brief = brief
            else:  # another thread made one meanwhile (a batch's exports): that one is kept
                brief._client.close()
                brief = self._brief
            if self._closed:  # closed meanwhile, maybe before it saw this one: closed here
                brief._client.close()
                self._refuse_closed()
        return brief

    def _refuse_closed(self) -> None:
        if self._closed:
            raise InvalidInput(f"the file store {self.url} is closed; open a new one")

    # --- put ----------------------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: Source,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> ObjectInfo:
        """Upload ``data`` to ``key`` whole or not at all (see the module)."""
        if not self._fits(key):
            room = MAX_KEY_BYTES - len(self.prefix.encode())
            raise InvalidInput(
                f"key {shown(key)} has {len(key.encode()):,} bytes; under the prefix {self.prefix!r} a key "
                f"takes at most {room:,} (S3 holds {MAX_KEY_BYTES:,} bytes of key, the prefix included)"
            )
        meta = check_metadata(metadata)
        check_overwrite(overwrite)
        content_type = content_type_for(key, content_type)
        head, body, size, digest, owned = prepare(data, self.multipart_threshold)
        try:
            meta[CHECKSUM_FIELD] = digest.hex()
            extra: dict[str, Any] = {"Metadata": meta, "ContentType": content_type}  # always a type
            if not overwrite:
                extra["IfNoneMatch"] = "*"
            try:
                if body is None:
                    self._put_once(key, head, size, digest, extra)
                elif size <= (self.multipart_threshold if overwrite else self.single_put_limit):
                    self._put_once(key, cast(IO[bytes], Window(body, size)), size, digest, extra)
                else:
                    self._put_parts(key, body, size, digest, extra)
            except ObjectExists:
                there = self._same(key, digest.hex(), size)
                if there is None:
                    raise
                return there  # these very bytes: a retry after a lost reply, not a conflict
        finally:
            if owned and body is not None:
                body.close()
        meta.pop(CHECKSUM_FIELD)
        return ObjectInfo(key, size, digest.hex(), content_type, meta)

    def _fits(self, key: str) -> bool:
        """Whether ``key`` (checked: ``InvalidInput``) fits S3's 1,024 bytes behind the prefix."""
        return len(self.prefix.encode()) + len(check_key(key).encode()) <= MAX_KEY_BYTES

    def _same(self, key: str, checksum: str, size: int) -> ObjectInfo | None:
        """The object at ``key`` if it holds these bytes (by its recorded checksum), else None."""
        try:
            there = self.head(key)
        except StorageError:
            return None
        return there if (there.checksum, there.size) == (checksum, size) else None

    def _put_once(
        self, key: str, body: bytes | IO[bytes], size: int, digest: bytes, extra: dict[str, Any]
    ) -> None:
        try:
            answer = self._client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=body,
                ContentLength=size,
                ChecksumSHA256=b64(digest),
                **extra,
            )
        except self._errors() as exc:
            self._fail("putting", key, exc)
        answered(answer, "ETag", f"putting {self.url}{key}", self.endpoint_url)

    # --- reads --------------------------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        """``key``'s full name in the bucket; ``ObjectNotFound`` when it is too long for S3 behind the
        prefix: no object can be there (put refuses it)."""
        if not self._fits(key):
            raise ObjectNotFound(f"{self.url}{key}: no such object")
        return self.prefix + key

    def head(self, key: str) -> ObjectInfo:
        full = self._full(key)
        try:
            found = self._client.head_object(Bucket=self.bucket, Key=full)
        except self._errors() as exc:
            self._fail("looking at", key, exc)
        answered(found, "ETag", f"looking at {self.url}{key}", self.endpoint_url)
        meta = dict(found.get("Metadata", {}))
        checksum = meta.pop(CHECKSUM_FIELD, None)
        return ObjectInfo(
            key, found["ContentLength"], checksum, found.get("ContentType"), meta, found.get("LastModified")
        )

    def get(self, key: str, *, checksum: str | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The object's bytes in chunks (the request is made now, the body read as chunks are taken)."""
        check_key(key)
        check_checksum(checksum)
        chunk_size = check_chunk_size(chunk_size)  # a plain int (np.int64 too)
        full = self._full(key)
        try:
            found = self._client.get_object(Bucket=self.bucket, Key=full)
        except self._errors() as exc:
            self._fail("reading", key, exc)
        body = found["Body"]
        try:
            answered(found, "ETag", f"reading {self.url}{key}", self.endpoint_url)
        except StoreUnavailable:
            body.close()
            raise
        expected = checksum or found.get("Metadata", {}).get(CHECKSUM_FIELD)
        return Opened(verified(self._stream(key, body, chunk_size), f"{self.url}{key}", expected), body.close)

    def _stream(self, key: str, body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        except self._errors() as exc:
            self._fail("reading", key, exc)
        except OSError as exc:  # urllib3's protocol and timeout errors
            raise StorageError(f"reading {self.url}{key} failed midway: {type(exc).__name__}") from exc
        finally:
            body.close()

    def delete(self, key: str) -> bool:
        """Remove the object; False when there was none (a head first: S3's DELETE does not say). A missing
        bucket is ``StoreUnavailable``, as for get and put (a HEAD's 404 has no body: a listing tells)."""
        try:
            self.head(key)
        except ObjectNotFound:
            if self._no_bucket():
                raise self._bucket_gone("removing", key) from None
            return False
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except self._errors() as exc:
            self._fail("removing", key, exc)
        return True

    def list(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, ``page_size`` (≤ 1000) keys a request."""
        check_prefix(prefix)
        page_size = check_chunk_size(page_size, "page_size", "keys")  # a plain int (np.int64 too)
        return self._list(prefix, min(page_size, 1000))

    def _list(self, prefix: str, page_size: int) -> Iterator[ObjectInfo]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix, PaginationConfig={"PageSize": page_size}
        )
        try:
            for page in pages:
                answered(page, "IsTruncated", f"listing {self.url}{prefix}", self.endpoint_url)
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"][len(self.prefix) :], item["Size"], modified=item.get("LastModified")
                    )
        except self._errors() as exc:
            self._fail("listing", prefix, exc)

    def uploads(self) -> Iterator[Upload]:
        """Multipart uploads begun under the prefix and never completed nor aborted."""
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        try:
            for page in pages:
                answered(page, "IsTruncated", f"listing the uploads under {self.url}", self.endpoint_url)
                for item in page.get("Uploads", []):
                    yield Upload(item["Key"][len(self.prefix) :], item["UploadId"], item.get("Initiated"))
        except self._errors() as exc:
            self._fail("listing the uploads under", "", exc)

    def abort(self, upload: Upload) -> None:
        check_key(check_upload(upload).key)
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.prefix + upload.key, UploadId=upload.upload_id
            )
        except self._errors() as exc:
            if code(exc) != "NoSuchUpload":
                self._fail("aborting an upload of", upload.key, exc)

    def presigned_url(self, key: str, *, expires: int = 3600, method: str = "GET") -> str:
        """A SigV4 presigned URL for ``method`` (GET or HEAD: the signature covers it) valid ``expires``
        seconds (signed locally: no existence check)."""
        check_key(key)
        expires = check_expiry(expires)  # a plain int (np.int64 too)
        operation = PRESIGNED_METHODS[check_url_method(method)]
        try:
            url = str(
                self._client.generate_presigned_url(
                    operation, Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=expires
                )
            )
        except self._errors() as exc:
            self._fail("signing a URL for", key, exc)
        return _without_userinfo(url)


def _without_userinfo(url: str) -> str:
    """``url`` without the user name and password an endpoint URL may carry (``http://user:pass@host``):
    botocore copies them into each presigned URL, which listeners are handed (and the dashboard's redirect
    sends), though neither the signature (made for the host alone) nor any request needs them."""
    scheme, separator, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not separator or "@" not in authority:
        return url
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


__all__ = [
    "BRIEF_CONNECT_SECONDS",
    "BRIEF_READ_SECONDS",
    "CONNECT_TIMEOUT_SECONDS",
    "CUSTOM_ENDPOINT",
    "DEFAULT_PART",
    "DEFAULT_THRESHOLD",
    "MIN_PART",
    "READ_TIMEOUT_SECONDS",
    "S3FileStore",
    "check_settings",
]
