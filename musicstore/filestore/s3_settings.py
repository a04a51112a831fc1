"""The S3 backend's settings (``musicstore.filestore.s3``, which re-exports these names): its arguments
checked and completed from the environment without making a client (:func:`check_settings`), and the part
sizes they are held to."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidInput, StorageError, shown
from ..masking import redact, register, register_secret
from ..storage_names import check_prefix
from ..validate import whole_number

MIN_PART = 5 << 20
"""S3's smallest part (all but the last)."""


DEFAULT_THRESHOLD = 16 << 20


DEFAULT_PART = 8 << 20


MAX_PART = 5 << 30
"""S3's largest part, and its largest single PUT: the most ``part_size`` and ``multipart_threshold`` take (a
larger threshold held a stream's bytes in memory up to it, then sent a PUT S3 refuses)."""


def mask_found(given: str | None, client: object) -> None:
    """Register the secret key and session token boto3's chain found (a profile in ``~/.aws``, an instance
    role) when none was given: botocore logs each request's token at DEBUG. (Ones refreshed later are not.)
    They are the ones ``client`` signs with, found as it was made: asking boto3's session walked the chain
    again when it had found none (None is not cached), asking an instance metadata endpoint twice."""
    signer = getattr(client, "_request_signer", None) if given is None else None
    found: Any = getattr(signer, "_credentials", None)
    frozen = found.get_frozen_credentials() if found is not None else None
    for secret in (frozen.secret_key, frozen.token) if frozen is not None else ():
        register_secret(secret or "")


def answered(answer: Mapping[str, object], field: str, where: str, endpoint_url: str | None) -> Any:
    """``answer[field]``, which every S3 server sends (an ETag, an upload id, a listing's ``IsTruncated``);
    ``StoreUnavailable`` when it is missing or empty: the endpoint is a web server (a proxy's page) answering
    200 to anything, whose page is no object and no listing, and nothing was stored."""
    if answer.get(field) in (None, ""):
        from .base import StoreUnavailable

        raise StoreUnavailable(
            f"{where}: {redact(endpoint_url or '(AWS)')} answered without the {field} any S3 server sends: "
            "it is no S3 endpoint (check AWS_ENDPOINT_URL, and HTTP_PROXY or NO_PROXY); nothing was changed"
        )
    return answer[field]


def _check_bucket(bucket: object) -> None:
    """A bucket's name as ``S3FileStore`` takes it (a legacy one too: upper case, ``_``): a str of 1 to 255
    characters without '/', ':', '@', a control character or a lone surrogate; ``InvalidInput`` otherwise."""
    if not isinstance(bucket, str) or not bucket or len(bucket) > 255:
        raise InvalidInput(f"bucket must be a bucket's name (1 to 255 characters), got {shown(bucket)}")
    if any(c in "/:@" or ord(c) < 32 or c == "\x7f" or 0xD800 <= ord(c) <= 0xDFFF for c in bucket):
        raise InvalidInput(
            "bucket must be a bucket's name without '/', ':', '@' or a control character (not shown: it may "
            "be a URL with a secret)"
        )


_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")
"""A region's name: botocore's ``validate_region_name`` pattern, matched whole."""


def _check_setting(name: str, value: object) -> None:
    """An S3 setting given as an argument: None or "" (then the environment's), or a str without NUL or
    lone surrogate (botocore raised TypeError, AttributeError or UnicodeEncodeError); never echoed: the
    secret key and the token are secrets, the endpoint URL may hold one."""
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a str or None, got {type(value).__name__}")
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidInput(f"{name} holds a NUL character or a lone surrogate (not shown)")


ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""The environment's S3 endpoint, first found first, as boto3 orders them (the service's own, then every
service's): where none is given. Neither is read when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true."""


def _endpoint_from(environ: Mapping[str, str]) -> str | None:
    """The first of ``ENDPOINT_VARIABLES`` set (None when none is, or boto3 is told to ignore them);
    ``InvalidInput`` for one set but blank: a compose file's unset ``${S3_ENDPOINT}`` sent objects to AWS."""
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":  # botocore's test
        return None
    for name in ENDPOINT_VARIABLES:
        value = environ.get(name)
        if value is not None and value.strip() == "":
            raise InvalidInput(
                f"${name} is set but empty: set it to the endpoint's URL, or unset it for AWS S3 itself"
            )
        if value is not None:
            return value
    return None


def check_endpoint(endpoint_url: str, url: str) -> None:
    """An S3 endpoint's URL as botocore's client checks it first (``botocore.utils``'
    ``is_valid_endpoint_url``, ``is_valid_ipv6_endpoint_url``), and printable ASCII without blanks at its
    ends, a query or a fragment (which botocore took); ``StorageError`` naming the store ``url`` otherwise,
    any password in the endpoint masked."""
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    register(endpoint_url)  # a password in its userinfo is masked from every message
    problem = None
    if not endpoint_url.isascii() or endpoint_url != endpoint_url.strip() or not endpoint_url.isprintable():
        # urllib strips leading control characters and spaces, and lower-cases the Kelvin sign to k
        problem = "Invalid endpoint: it holds a control character, a space at its ends or non-ASCII"
    elif not (is_valid_endpoint_url(endpoint_url) or is_valid_ipv6_endpoint_url(endpoint_url)):
        problem = f"Invalid endpoint: {endpoint_url}"
    elif "?" in endpoint_url or "#" in endpoint_url:
        problem = f"Invalid endpoint: {endpoint_url}: an S3 endpoint takes no query or fragment"
    if problem is not None:
        raise StorageError(f"cannot make an S3 client for {url}: {redact(problem)}")


_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def configured_endpoint(client: Any) -> str | None:
    """The endpoint a boto3 client made without one took from its config file (``endpoint_url`` in the
    profile, or in its ``services`` section for s3); None when it goes to AWS S3 itself."""
    endpoint: str = client.meta.endpoint_url
    host = urlsplit(endpoint).hostname or ""
    return None if host.endswith(_AWS_HOSTS) else endpoint


def check_settings(
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
) -> dict[str, Any]:
    """``S3FileStore``'s checks of its arguments, in its order and with its errors (``InvalidInput``;
    ``StorageError`` for a missing boto3, a malformed endpoint URL or region name), and its settings read from
    the environment where not given; the secret and the token are registered with ``musicstore.masking``.

    No client is made: no session, config file, credential or endpoint is looked up, nothing blocks but
    boto3's first import (``check_filestore`` runs this on an event loop; the store's client is made later,
    in a worker thread). The endpoint URL and the region are checked by botocore's own functions, those its
    client runs first (``botocore.utils``'
    ``is_valid_endpoint_url``, ``is_valid_ipv6_endpoint_url``, ``validate_region_name``)."""
    try:
        import boto3  # noqa: F401
        from botocore.utils import validate_region_name
    except ImportError:
        raise StorageError("s3:// storage needs boto3: pip install 'musicstore[s3]'") from None
    _check_bucket(bucket)
    if not isinstance(prefix, str):  # a falsy list or None was taken for "" and spelt into the store's URL
        raise InvalidInput(f"prefix must be a str ('' for none), got {type(prefix).__name__}")
    if prefix:
        check_prefix(prefix)
        if not prefix.endswith("/"):
            raise InvalidInput(f"prefix {prefix!r} must end with '/'")
    sizes: dict[str, int] = {}
    for name, value in (("multipart_threshold", multipart_threshold), ("part_size", part_size)):
        whole = whole_number(value)  # any integer (np.int64 too), as a plain int
        if whole is None or not MIN_PART <= whole <= MAX_PART:
            raise InvalidInput(
                f"{name}={shown(value)} must be a whole number of bytes, at least {MIN_PART} (5 MiB) and at "
                f"most {MAX_PART} (5 GiB: S3's largest part and single PUT)"
            )
        sizes[name] = whole
    given = {"endpoint_url": endpoint_url, "region": region, "access_key_id": access_key_id}
    given |= {"secret_access_key": secret_access_key, "session_token": session_token}
    for name, setting in given.items():
        _check_setting(name, setting)
    environ = os.environ
    endpoint_url = endpoint_url or _endpoint_from(environ)
    region = region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None  # None: boto3's
    secret_access_key = secret_access_key or environ.get("AWS_SECRET_ACCESS_KEY") or None
    session_token = session_token or environ.get("AWS_SESSION_TOKEN") or None
    for secret in (secret_access_key, session_token):
        if secret:
            register_secret(secret)
    url = f"s3://{bucket}/{prefix}"
    try:
        if region is not None:  # else the profile's (boto3 checks it), or us-east-1
            validate_region_name(region)  # botocore's ValueErrors, as its client raises them
            if not _REGION.fullmatch(region):  # botocore's pattern ends in $, which a last newline passes
                raise ValueError(f"Provided region_name {region!r} doesn't match a supported format.")
    except ValueError as exc:
        raise StorageError(f"cannot make an S3 client for {url}: {redact(str(exc))}") from exc
    if endpoint_url is not None:
        check_endpoint(endpoint_url, url)
    return {
        "endpoint_url": endpoint_url,
        "region": region,
        "access_key_id": access_key_id or environ.get("AWS_ACCESS_KEY_ID") or None,
        "secret_access_key": secret_access_key,
        "session_token": session_token,
        **sizes,
    }
