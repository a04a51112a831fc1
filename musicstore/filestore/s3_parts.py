"""The S3 backend's multipart put (``musicstore.filestore.s3``): parts sent with their SHA-256, the bytes
hashed again as they go, the upload completed only when every part is in and aborted on any failure, so the
key never holds a part."""

from __future__ import annotations

import hashlib
from typing import IO, TYPE_CHECKING, Any

from .base import ChecksumMismatch, ObjectExists, ObjectInfo, ObjectNotFound
from .bodies import b64
from .s3_errors import S3Errors
from .s3_settings import answered

MAX_PARTS = 10_000


class MultipartPuts(S3Errors):
    """``_put_parts`` of an S3 store: its prefix and part size, and its ``head``."""

    prefix: str
    part_size: int

    if TYPE_CHECKING:

        def head(self, key: str) -> ObjectInfo: ...

    def _put_parts(self, key: str, body: IO[bytes], size: int, digest: bytes, extra: dict[str, Any]) -> None:
        full = self.prefix + key
        condition = extra.pop("IfNoneMatch", None)
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        if condition:  # refused at the completion anyway; asking first saves sending the parts in vain
            try:
                self.head(key)
            except ObjectNotFound:
                pass
            else:
                raise ObjectExists(f"{self.url}{key} exists already; it was left unchanged")
        try:
            upload = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=full, ChecksumAlgorithm="SHA256", **extra
            )
        except self._errors() as exc:
            self._fail("starting the upload of", key, exc)
        upload_id = answered(upload, "UploadId", f"putting {self.url}{key}", self.endpoint_url)
        try:
            parts: list[Any] = []
            again, sent = hashlib.sha256(), 0
            while sent < size:
                piece = _read(body, min(part_size, size - sent))
                if not piece:
                    break
                again.update(piece)
                sent += len(piece)
                part = self._client.upload_part(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=len(parts) + 1,
                    Body=piece,
                    ChecksumSHA256=b64(hashlib.sha256(piece).digest()),
                )
                parts.append(
                    {
                        "PartNumber": len(parts) + 1,
                        "ETag": part["ETag"],
                        "ChecksumSHA256": part["ChecksumSHA256"],
                    }
                )
            if sent != size or again.digest() != digest:
                raise ChecksumMismatch(
                    f"putting {self.url}{key}: the source changed while it was read (hashed, then sent); "
                    "nothing was stored"
                )
            kwargs: dict[str, Any] = {"IfNoneMatch": condition} if condition else {}
            done = self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}, **kwargs
            )
            answered(done, "ETag", f"putting {self.url}{key}", self.endpoint_url)
        except BaseException as exc:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            except Exception as cleanup:
                exc.add_note(
                    f"and aborting the upload failed too ({type(cleanup).__name__}): uploads() lists it"
                )
            if isinstance(exc, self._errors()):
                self._fail("uploading", key, exc)
            raise


def _read(body: IO[bytes], size: int) -> bytes:
    """``size`` bytes of ``body``, fewer only at its end: a raw stream's read may return fewer, and a part
    under 5 MiB but the last is refused (EntityTooSmall)."""
    pieces, got = [], 0
    while got < size and (piece := body.read(size - got)):
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


__all__ = ["MAX_PARTS", "MultipartPuts"]
