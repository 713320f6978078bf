"""Keep API keys out of logs: redact them from uvicorn's access and error log records.

The API reads keys from headers only, which uvicorn never logs; but a client may still put a
key in a URL (the `/lag` page accepts `?key=` once, or a misconfigured client sends
`?api_key=`), and the access log prints the full path with its query string.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
# A fairstream key anywhere (its id is public; the secret is what must never appear).
_KEY = re.compile(r"(fs_[0-9a-f]{16}_)[A-Za-z0-9_\-]{20,}")
# The value of a query parameter that looks like a credential, whatever it holds.
_QUERY = re.compile(
    r"([?&](?:key|api_key|apikey|api-key|x-api-key|token|access_token|authorization)=)[^&#\s\"']*",
    re.IGNORECASE,
)
LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "fastapi")


def redact(text: str) -> str:
    """Return `text` with key secrets and credential query values replaced."""
    return _QUERY.sub(r"\1" + REDACTED, _KEY.sub(r"\1" + REDACTED, text))


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class KeyRedactingFilter(logging.Filter):
    """Rewrite a record's message and arguments so that no key survives formatting."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drop the record."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        return True


def install_key_redaction() -> None:
    """Attach the filter to uvicorn's and FastAPI's loggers once."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, KeyRedactingFilter) for f in logger.filters):
            logger.addFilter(KeyRedactingFilter())
