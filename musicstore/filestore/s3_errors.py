"""How the S3 backend (``musicstore.filestore.s3``) tells its failures: each botocore error mapped to the
typed, one-line error of ``musicstore.filestore.base`` (no secret in it), a missing bucket told apart from a
denial by one listing."""

from __future__ import annotations

from typing import Any, NoReturn

from ..errors import InvalidInput, StorageError
from ..masking import redact
from .base import ChecksumMismatch, ObjectExists, ObjectNotFound, StoreUnavailable

_DENIED = {
    "AccessDenied",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "403",
}
_MISSING = {"NoSuchKey", "NotFound", "404"}
_HEADS = {"HeadObject", "HeadBucket"}  # no body: their 404 is all an S3 server says of a missing object


def not_s3(exc: Exception) -> bool:
    """Whether a botocore ``ClientError`` is a 4xx answer without an S3 error code (every S3 server names its
    error in the answer's body: ``NoSuchKey``, ``NoSuchBucket``...): an endpoint that is no S3 server
    (another port of SeaweedFS, a web server, a proxy's 407), whose 404 is no object's or bucket's. 403 is a
    denial either way; a HEAD's answer has no body, so its 404 is a missing object's (its other 4xx are
    not S3's: a 405, a 407)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if getattr(exc, "operation_name", None) in _HEADS and status == 404:
        return False
    named = str(response.get("Error", {}).get("Code") or "")
    return isinstance(status, int) and 400 <= status < 500 and status != 403 and named in ("", str(status))


_REDIRECTS = {301, 302, 303, 307, 308}


class Redirected(Exception):
    """An answer redirecting the request elsewhere without naming the bucket's region, as no S3 server does
    (an http-to-https redirect in front of it, a web server): raised by ``refuse_redirects``' hook."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def refuse_redirects(client: Any) -> None:
    """Make ``client`` (one for an endpoint of the user's) raise ``Redirected`` where botocore's region
    redirector would loop: at a redirect that names no region, it asks the bucket's region with a
    ``HeadBucket``, which AWS answers with the region; redirected in turn without one, it asked again,
    and so on until Python's ``RecursionError`` (about 80 requests, a traceback). That ``HeadBucket`` is
    refused."""

    def refuse(response: Any = None, operation: Any = None, **_: Any) -> None:
        if response is None or getattr(operation, "name", None) != "HeadBucket":
            return
        answer = response[0]
        if answer.status_code in _REDIRECTS and "x-amz-bucket-region" not in answer.headers:
            raise Redirected(answer.status_code)

    client.meta.events.register_first("needs-retry.s3", refuse)


def code(exc: Exception) -> str:
    """The S3 error code of a botocore ``ClientError`` ("" for another error)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class S3Errors:
    """The error mapping of an S3 store: its bucket, URL, endpoint and client."""

    bucket: str
    url: str
    endpoint_url: str | None
    _client: Any  # boto3's S3 client

    def _fail(self, doing: str, key: str | None, exc: Exception) -> NoReturn:
        """Raise the typed, one-line error for a botocore failure (no secret in it: see the module)."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            NoCredentialsError,
            ProxyConnectionError,
            ReadTimeoutError,
            SSLError,
        )
        from botocore.exceptions import ConnectionError as Unreachable
        from botocore.parsers import ResponseParserError

        where = f"{self.url}{key}" if key is not None else self.url
        if isinstance(exc, ClientError):
            error: Any = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            name = str(error.get("Code") or status or "")  # an HTML page has no code: its status, as a HEAD's
            if name == "NoSuchBucket":
                raise self._bucket_gone(doing, key) from exc
            if not_s3(exc):  # a bare 404 was "no such object" for a put or a listing too
                raise self._not_s3_error(doing, where, f"HTTP {status} without an S3 error code") from exc
            if name in _MISSING:
                raise ObjectNotFound(f"{where}: no such object") from exc
            if name == "PreconditionFailed" or status == 412:
                raise ObjectExists(f"{where} exists already; it was left unchanged") from exc
            if name == "BadDigest":  # the bytes sent do not hash to the SHA-256 the put computed first
                changed = "the source changed while it was read (hashed, then sent); nothing was stored"
                raise ChecksumMismatch(f"{doing} {where}: {changed}") from exc
            if name in ("KeyTooLongError", "KeyTooLong"):  # a retry cannot help: the key is what is wrong
                raise InvalidInput(
                    f"{doing} {where}: the server refuses the key as too long ({name}; SeaweedFS holds a "
                    "folder or file name to 255 bytes, as a local store does; S3 a key to 1,024)"
                ) from exc
            if name in _DENIED and self._no_bucket():  # a server may deny a write to a bucket not there
                raise self._bucket_gone(doing, key) from exc
            if name in _DENIED:
                raise StoreUnavailable(
                    f"{doing} {where}: access denied ({name}); check AWS_ACCESS_KEY_ID, "
                    "AWS_SECRET_ACCESS_KEY and the bucket's policy"
                ) from exc
            said = str(error.get("Message", "")).splitlines()[0] if error.get("Message") else ""
            message = redact(said)  # the server's own words: masked as the rest
            raise StorageError(f"{doing} {where} failed: {name or status} {message}".rstrip()) from exc
        if isinstance(exc, Redirected):
            raise self._not_s3_error(doing, where, f"a redirect ({exc}) and no region") from exc
        if isinstance(exc, ResponseParserError):  # a 200 whose body is no S3 answer (SeaweedFS's filer port)
            raise self._not_s3_error(doing, where, "an answer that is not S3's") from exc
        if isinstance(exc, NoCredentialsError):
            raise StoreUnavailable(
                f"{doing} {where}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from exc
        if isinstance(exc, Unreachable | ConnectionClosedError):  # refused, hung up on, TLS or proxy failed
            endpoint = redact(self.endpoint_url or "(AWS)")
            why = (
                "; the proxy (HTTP_PROXY, HTTPS_PROXY) could not be reached: NO_PROXY bypasses it"
                if isinstance(exc, ProxyConnectionError)
                else "; TLS failed (the endpoint's certificate, AWS_CA_BUNDLE)"
                if isinstance(exc, SSLError)
                else ""
            )
            raise StoreUnavailable(f"{doing} {where}: cannot reach the S3 endpoint {endpoint}{why}") from exc
        if isinstance(exc, ReadTimeoutError):  # it takes connections and does not answer: stalled
            raise StoreUnavailable(
                f"{doing} {where}: the S3 endpoint {redact(self.endpoint_url or '(AWS)')} did not answer "
                f"(each attempt waited {self._client.meta.config.read_timeout} s)"
            ) from exc
        raise StorageError(f"{doing} {where} failed: {type(exc).__name__}: {redact(str(exc))}") from exc

    def _bucket_gone(self, doing: str, key: str | None) -> StoreUnavailable:
        where = f"{self.url}{key}" if key is not None else self.url
        return StoreUnavailable(f"{doing} {where}: the bucket {self.bucket!r} does not exist")

    def _not_s3_error(self, doing: str, where: str, answer: str) -> StoreUnavailable:
        endpoint = redact(self.endpoint_url or "(AWS)")
        return StoreUnavailable(
            f"{doing} {where}: the endpoint {endpoint} gave {answer}; is it the S3 endpoint "
            "(AWS_ENDPOINT_URL), or a proxy's answer (HTTP_PROXY, HTTPS_PROXY; NO_PROXY bypasses one)?"
        )

    def _no_bucket(self) -> bool:
        """Whether the bucket is missing, asked after a denial or a HEAD's 404 (one listing request, on that
        path only): SeaweedFS denies a put to a bucket that does not exist, where the listing says
        NoSuchBucket. An endpoint that is no S3 server is ``StoreUnavailable``."""
        try:
            self._client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except Exception as exc:
            if not_s3(exc):
                raise self._not_s3_error("listing", self.url, "an answer without an S3 error code") from exc
            return code(exc) == "NoSuchBucket"
        return False

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        return (BotoCoreError, ClientError, ResponseParserError, Redirected)


__all__ = ["Redirected", "S3Errors", "code", "refuse_redirects"]
