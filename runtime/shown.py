"""How user-given names appear in results and messages: file names of any bytes as valid text, secrets
never shown.

- ``shown_name``: a file name or path exactly as the OS gives it, made printable: bytes that are not
  UTF-8 (Python holds them as surrogate escapes, ``os.fsdecode``) and control characters become
  ``\\xNN``, so JSON, CSV and one-line messages can carry every name. Names that are valid UTF-8
  without control characters come out unchanged.
- ``redact``: every URL in a text loses its password and its query and fragment values
  (``rtsp://cam:***@host/live?token=***``), and ``password=``-style values outside URLs are masked
  (``user-pw=***`` of a GStreamer ``rtspsrc``). ``runtime.errors.stderr_line`` applies it to every
  line the runtime prints, so no message shows a secret, wherever its text came from.
"""
from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

MASK = "***"
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
# key=value pairs whose value is a secret, outside URLs (GStreamer properties, connection strings). An
# unquoted value also ends at a quote that ends a word (the quote closing a name in a message, "'...?token=x':"),
# so the message after it stays readable; a quote inside the value is masked with it.
_SECRET_KEYS = re.compile(r"(?i)\b(user-pw|password|passwd|passphrase|pwd|pass|token|access[_-]?token|secret|"
                          r"api[_-]?key|access[_-]?key|auth|sig|signature)(\s*=\s*)(\"[^\"]*\"|'[^']*'|"
                          r"(?:[^\s!,;&'\"]|['\"](?![\s:;,)]|$))+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown_name(name: str | bytes | os.PathLike) -> str:
    """``name`` as printable text: non-UTF-8 bytes and control characters as ``\\xNN``, the rest unchanged."""
    raw = os.fsencode(name)
    text = raw.decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def quoted(name: str | bytes | os.PathLike) -> str:
    """``shown_name`` in single quotes, for messages (``repr`` would double the backslashes)."""
    return f"'{shown_name(name)}'"


def redact_url(url: str) -> str:
    """One URL without its password and with every query and fragment value masked."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:  # e.g. a port that is not a number: keep nothing after the scheme's host part
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}/{MASK}"
    netloc = parts.netloc
    if password is not None:
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{port}" if port else "")
    query = "&".join(_mask_pair(p) for p in parts.query.split("&")) if parts.query else ""
    fragment = MASK if parts.fragment else ""
    return parts._replace(netloc=netloc, query=query, fragment=fragment).geturl()


def _mask_pair(pair: str) -> str:
    key, eq, _ = pair.partition("=")
    return f"{key}={MASK}" if eq else MASK


def redact(text: str) -> str:
    """``text`` with every URL passed through ``redact_url`` and ``password=``-style values masked."""
    text = _URL.sub(lambda m: redact_url(m.group()), str(text))
    return _SECRET_KEYS.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
