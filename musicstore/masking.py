"""Secrets out of every message: the passwords of the database URLs this process was given, masked.

``musicstore.urls.resolve`` registers each URL's password, every way a parser may read it (the userinfo as
libpq, ``urllib`` and a reader up to the last ``@`` before the query see it; ``password=``, ``sslpassword=``,
``oauth_client_secret=``... parameters, also read on through an unescaped ``&``, and by a percent-encoded
name, ``pass%77ord=``, which libpq decodes); ``$PGPASSWORD`` is read at
each call. ``redact`` replaces each in a text, raw, percent-decoded and percent-encoded, and each piece of the
raw and decoded forms between the characters URL parsers split on and percent-escapes (a driver that split the
URL elsewhere quotes a piece; a fragment of an encoded form is never a piece: it would mask hex). Every
``MusicstoreError`` message goes through it, as does the exception being handled when one is made (the driver
error it wraps), a job's error message and cancel reason as they are stored (``validate.message``), and the
log records of psycopg, yoyo, the worker and an S3 client (botocore, urllib3: ``mask_logs``).
Pieces shorter than ``MIN_SECRET`` characters are not masked in free text: they would mask ordinary words.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from urllib.parse import quote, unquote

MASK = "***"
MIN_SECRET = 3
PASSWORD_ENV = "PGPASSWORD"
_NAME = r"\b(?:\w*password|\w*secret|scram_\w+_key)"
SECRET_PARAMETER = re.compile(
    rf"""(?ix) ({_NAME} \s*=\s*) ( '(?:[^'\\]|\\.)*' | "(?:[^"\\]|\\.)*" | [^\s&;]* )"""
)
"""``password=...`` in a URL query or a libpq ``key=value`` string: group 1 the name, group 2 the value."""
_KEYWORDS = " ".join(
    [
        "application_name channel_binding client_encoding connect_timeout dbname fallback_application_name",
        "gssdelegation gssencmode gsslib host hostaddr keepalives keepalives_count keepalives_idle",
        "keepalives_interval krbsrvname load_balance_hosts max_protocol_version min_protocol_version",
        "oauth_client_id oauth_client_secret oauth_issuer oauth_scope options passfile password port",
        "replication require_auth requirepeer scram_client_key scram_server_key service sslcert sslcertmode",
        "ssl_max_protocol_version ssl_min_protocol_version sslcompression sslcrl sslcrldir sslkey sslmode",
        "sslkeylogfile sslnegotiation sslpassword sslrootcert sslsni target_session_attrs tcp_user_timeout",
        "user",
    ]
).split()
"""libpq's connection parameters (``psycopg.pq.Conninfo.get_defaults()``, libpq 17)."""
_UNESCAPED_PARAMETER = re.compile(rf"(?i){_NAME}=([^&\s]*(?:&(?!(?:{'|'.join(_KEYWORDS)})=)[^&\s]*)*)")
"""A secret parameter read on through each ``&`` not followed by a libpq ``keyword=``: libpq quotes the text
after an unescaped ``&`` in its error."""
_SECRET_NAME = re.compile(f"(?i){_NAME}")
_PIECES = re.compile(r"(?:%[0-9A-Fa-f]{2}|[@:/?#&=%\s'\"\\;])+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?://)?")
_LOGGERS = ("psycopg", "psycopg.pool", "psycopg_pool.sched", "yoyo", "yoyo.migrations", "musicstore.worker")
"""Loggers masked from the start (``musicstore.worker`` logs a handler's error, which may quote a secret)."""

_secrets: set[str] = set()
_lock = threading.Lock()


def is_secret_parameter(name: str) -> bool:
    """Whether a connection parameter of this name holds a secret (``password``, ``sslpassword``,
    ``oauth_client_secret``, ``scram_client_key``...)."""
    return _SECRET_NAME.fullmatch(name.strip()) is not None


def passwords(text: str) -> list[str]:
    """Every reading of the password in a database URL (or libpq ``key=value`` string), raw."""
    found = [value.strip("'\"") for _, value in SECRET_PARAMETER.findall(text)]
    found += _UNESCAPED_PARAMETER.findall(text)
    for part in text.partition("?")[2].split("&"):  # a query value up to its &, spaces and all
        key, equals, value = part.partition("=")
        if equals and is_secret_parameter(unquote(key)):  # libpq decodes a name: pass%77ord is password
            found += [value, value.strip()]
    scheme = _SCHEME.match(text)
    rest = text[scheme.end() :] if scheme else text
    libpq = re.match(r"[^@/]*(?=@)", rest)  # libpq: the userinfo ends at the first @ (before any /)
    netloc = re.match(r"[^/?#]*", rest)  # urllib: the authority ends at / ? #, the userinfo at its last @
    readings = [
        libpq[0] if libpq else "",
        netloc[0].rpartition("@")[0] if netloc else "",
        rest.partition("?")[0].rpartition("@")[0],  # what a password with an unescaped / or @ meant
        # ... and with an unescaped ? (libpq then quotes the text after it as a query parameter), when no
        # key=value lies between that ? and the last @ (a real query's @ is not the userinfo's)
        rest.rpartition("@")[0] if "=" not in rest.rpartition("@")[0].partition("?")[2] else "",
    ]
    found += [userinfo.partition(":")[2] for userinfo in readings if ":" in userinfo]
    return [password for password in found if password]


def _forms(secret: str) -> set[str]:
    """A secret as it may appear in a message: raw, decoded, their pieces, and each of these encoded and
    escaped, whole.

    Only the raw and decoded forms are split, and a percent-escape splits as a unit: a piece of an encoded
    form ("2540" of "%2540", "405c" of "a%405c") is hex that is no part of the secret and would mask part of
    a generation id. Every piece is thus a run of the raw or the decoded secret; every other form is masked
    only whole (it holds ``%`` or ``\\`` where it differs from the form it came from)."""
    plain = {secret, unquote(secret)}
    for form in list(plain):
        plain.update(_PIECES.split(form))
    # a byte the shell passed undecoded (a surrogate escape) as its %XX; no encoded form of another surrogate
    forms = plain | {quote(form, safe="", errors="surrogateescape") for form in plain if _encodable(form)}
    forms |= {json.dumps(form, ensure_ascii=False)[1:-1] for form in list(forms)}
    forms |= {repr(form)[1:-1] for form in list(forms)}
    return {form for form in forms if len(form) >= MIN_SECRET}


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def register(text: str) -> None:
    """Remember the password(s) in a database URL, so that ``redact`` masks them from now on."""
    found = passwords(text)
    if found:
        forms = set().union(*(_forms(password) for password in found))
        with _lock:
            _secrets.update(forms)


def register_secret(secret: str) -> None:
    """Remember a secret given as is (an S3 secret access key, a session token), so ``redact`` masks it."""
    if secret:
        forms = _forms(secret)
        with _lock:
            _secrets.update(forms)


def redact(text: str) -> str:
    """``text`` with every known secret masked (URL passwords registered so far, ``$PGPASSWORD``)."""
    with _lock:
        secrets = set(_secrets)
    environ = os.environ.get(PASSWORD_ENV)
    if environ:
        secrets |= _forms(environ)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub(exc: BaseException | None) -> None:
    """Mask secrets in the messages of ``exc`` and of the exceptions it chains to, in place."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        pending += [exc.__cause__, exc.__context__]
        try:
            exc.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in exc.args)
            notes = getattr(exc, "__notes__", None)
            if isinstance(notes, list):
                notes[:] = [redact(note) if isinstance(note, str) else note for note in notes]
            if isinstance(exc, OSError):  # its str() is made of these, not of args
                for name in ("strerror", "filename", "filename2"):
                    if isinstance(value := getattr(exc, name), str):
                        setattr(exc, name, redact(value))
        except (AttributeError, TypeError):  # an exception type with read-only args
            pass


def _mask(record: logging.LogRecord) -> None:
    """Mask the known secrets in a log record, in place: its message (its arguments merged in) and the
    exception it carries (its traceback is formatted again from the masked one)."""
    message = record.getMessage()
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[1] is not None:
        scrub(record.exc_info[1])
        record.exc_text = None


class RedactingFilter(logging.Filter):
    """Masks secrets in the log records of the loggers it is added to (psycopg's pool quotes libpq)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask(record)
        return True


class RedactingHandler(logging.Handler):
    """Masks each record that reaches it, in place, and writes nothing: first among the handlers of a
    library's top logger (``mask_logs``), it masks the records of every logger under it, made before or
    after, on their way up to the handlers of the loggers above (the root's: the application's)."""

    def handle(self, record: logging.LogRecord) -> bool:
        _mask(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        pass


def mask_logs(*prefixes: str) -> None:
    """Mask the log records of the loggers named ``prefix`` or under it, those made so far and those made
    later (a module the library imports on demand: ``s3transfer.processpool``, ``urllib3.contrib.pyopenssl``,
    ``boto3.crt``...), before any handler above them sees one.

    Why so: a logger's filter sees only the records logged to it, not those its children pass up, so a
    ``RedactingFilter`` added to each logger made so far (kept: it masks a record for a handler attached to
    that very logger) misses every logger made after it. A ``RedactingHandler`` first among the handlers of
    each ``prefix`` logger sees every record of every logger under it, whenever made, as it propagates, and
    before the handlers of the loggers above (the root's) do: it is scoped to these loggers, where a log
    record factory (``logging.setLogRecordFactory``) would wrap every record of the process, and it costs
    nothing when their level drops the records (none is made). Not covered: a logger made later that does not
    propagate, or a handler attached to one; and a configuration that removes the prefix logger's handlers
    (``logging.config.dictConfig`` naming it) removes this one too, until the next call (each S3 store made).
    Call it once the library is imported: these libraries add a ``NullHandler`` to their top logger, so this
    handler changes no record's route (Python's last-resort handler sees none of them either way)."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or not any(
            name == prefix or name.startswith(prefix + ".") for prefix in prefixes
        ):
            continue
        if not any(isinstance(each, RedactingFilter) for each in logger.filters):
            logger.addFilter(RedactingFilter())
    for prefix in prefixes:
        top = logging.getLogger(prefix)
        with _lock:  # two stores made at once add one handler
            if not any(isinstance(each, RedactingHandler) for each in top.handlers):
                top.handlers.insert(0, RedactingHandler())  # before the application's own, if any


S3_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")
"""What an S3 client logs through (DEBUG: each request's headers, a session token among them, the endpoint
URL, the canonical request of a signature): masked once one is made (``S3FileStore``)."""

for _name in _LOGGERS:
    logging.getLogger(_name).addFilter(RedactingFilter())
