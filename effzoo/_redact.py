"""Credentials out of everything effzoo prints: errors, ``effzoo env``, the weights record
(``model.weights``, pickled into checkpoints) and effzoo's log.

``redact(text)`` masks, as ``***``:

* the user info of a URL (``http://user:password@mirror/`` -> ``http://***@mirror/``) and
  a bare ``user:password@host`` (``user:***@host``),
* the value of a query parameter that carries a credential (``X-Amz-Signature=``,
  ``X-Amz-Credential=``, ``sig=``, ``token=``, ``Signature=``, ``Policy=``, ``Key-Pair-Id=``, ...),
* Hugging Face tokens (``hf_...``) and ``Authorization`` values (``Bearer ...``),
* the value of any environment variable named like a credential (``HF_TOKEN``,
  ``HUGGING_FACE_HUB_TOKEN``, ``*_SECRET``, ``*_PASSWORD``, ``*_API_KEY``, ...) and the user
  info of any variable that holds a URL with one (``HF_ENDPOINT``, ``HTTPS_PROXY``,
  ``ALL_PROXY``, ...), wherever they appear, also where a path mangled the URL.

It is applied where effzoo's output is made: ``EffzooError`` (its message and
``reason``), ``WeightsRecord``'s strings, every line of ``effzoo env``, the command
line's one-line errors, and a filter on the ``effzoo`` logger.
"""

from __future__ import annotations

import logging
import os
import re

MASK = "***"
#: a URL's user info: scheme://USERINFO@host (also scheme:/USERINFO@host: a URL in a path)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*:/{1,2})[^\s/?#@'\"<>]+@")
#: a query parameter whose value is a credential (signed URLs of S3, CloudFront, Azure, GCS)
_QUERY = re.compile(
    r"(?P<key>[?&;][A-Za-z0-9_.-]*(?:sig|signature|token|key|secret|passw|credential|auth|policy)"
    r"[A-Za-z0-9_.-]*=)[^&#\s'\"<>]+",
    re.IGNORECASE,
)
#: ``user:password@host`` without a scheme (how requests also takes a proxy)
_BARE_USERINFO = re.compile(r"(?P<user>(?<![\w/:])[\w.%+-]+):[^\s/@'\"<>:]+@(?=[\w.-])")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{16,}")
_AUTH_HEADER = re.compile(r"(?P<key>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
#: environment variables whose value is a credential (not a path to one, not a flag)
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|CREDENTIAL|AUTH", re.I)
_NOT_SECRET_NAME = re.compile(r"_(?:PATH|FILE|DIR|HOME|SOCK|URL)$|^HF_HUB_DISABLE_", re.I)
#: a value's user info, with or without a scheme (``user:pass@proxy:3128`` works for requests)
_VALUE_USERINFO = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.-]*://)?(?P<info>[^\s/?#@]+)@")
#: shorter values are not replaced as plain text (the patterns above still apply)
_MIN_LITERAL = 6
#: flag values of variables named like credentials (``TOKENIZERS_PARALLELISM=false``)
_FLAGS = {"true", "false", "yes", "no", "on", "off", "enabled", "disabled", "none", "null"}


def _env_secrets() -> list[str]:
    """Credential strings the environment holds, longest first."""
    found: set[str] = set()
    for name, value in os.environ.items():
        value = value.strip()
        if not value:
            continue
        if _SECRET_NAME.search(name) and not _NOT_SECRET_NAME.search(name):
            if value.lower() not in _FLAGS and not value.isdigit():
                found.add(value)
        m = _VALUE_USERINFO.match(value)
        if m:
            info = m.group("info")
            found.update((info, info.partition(":")[2]))
    return sorted((s for s in found if len(s) >= _MIN_LITERAL), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every credential masked (see the module docstring)."""
    if not isinstance(text, str) or not text:
        return text
    for secret in _env_secrets():
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _BARE_USERINFO.sub(lambda m: f"{m.group('user')}:{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m.group('key')}{MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('key')}{MASK}", text)
    return _HF_TOKEN.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """Masks credentials in every record of the logger it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def _install(logger: logging.Logger) -> None:
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


_install(logging.getLogger("effzoo"))
