"""Key verification compares in constant time; log redaction removes every key form."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import pytest

from api import keys, security
from api.keys import hash_secret, new_key, verify_secret
from api.log_redaction import KeyRedactingFilter, redact

SECRET = "YrKtzYcm5eI2IO89QUmnj0CiLscwiT8aIDxuMhDmVzM"
KEY = f"fs_c0ddd78b3dbd2c86_{SECRET}"


@pytest.fixture
def compare_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Record every hmac.compare_digest call made by the key code (and still compare)."""
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", recording)
    return calls


def test_secret_verification_uses_compare_digest_on_the_scrypt_digests(
    compare_calls: list[tuple[Any, Any]],
) -> None:
    key = new_key()
    stored = hash_secret(key.secret)
    assert verify_secret(key.secret, stored)
    assert not verify_secret(key.secret[:-1] + "x", stored)
    assert len(compare_calls) == 2
    for presented, kept in compare_calls:
        assert kept == stored.secret_hash and len(presented) == len(kept) == 32
        assert key.secret.encode() not in (presented, kept)


def test_two_presented_keys_are_compared_in_constant_time(
    compare_calls: list[tuple[Any, Any]],
) -> None:
    assert security._presented_key(KEY, None) == KEY
    with pytest.raises(Exception, match="different keys"):
        security._presented_key(KEY, _bearer(KEY[:-1] + "x"))
    assert compare_calls == [(KEY, KEY[:-1] + "x")]


def _bearer(value: str) -> Any:
    from fastapi.security import HTTPAuthorizationCredentials

    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=value)


def test_hashing_is_slow_on_purpose() -> None:
    assert keys.SCRYPT_N >= 2**14 and keys.SCRYPT_R >= 8
    assert hash_secret(SECRET).secret_hash != hash_secret(SECRET).secret_hash  # salted


@pytest.mark.parametrize(
    "text",
    [
        f'127.0.0.1:1 - "GET /lag?key={KEY} HTTP/1.1" 200',
        f"GET /v1/bias/results?limit=1&api_key={KEY}&x=1",
        f"GET /v1/x?token={SECRET}",
        f"GET /v1/x?Authorization=Bearer%20{SECRET}",
        f"unexpected value {KEY!r} in a message",
        f"GET /nowhere/{KEY}",
    ],
)
def test_redact_removes_the_secret(text: str) -> None:
    cleaned = redact(text)
    assert SECRET not in cleaned and "[redacted]" in cleaned


def test_redact_leaves_ordinary_text_alone() -> None:
    text = 'GET /v1/bias/results?limit=10&keyword=x&monkey=1 HTTP/1.1" 200'
    assert redact(text) == text


def test_the_filter_rewrites_args_so_formatting_still_works() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", f"/lag?key={KEY}", "1.1", 200),
        None,
    )
    assert KeyRedactingFilter().filter(record)
    message = record.getMessage()
    assert SECRET not in message and message.endswith('HTTP/1.1" 200')
    assert isinstance(record.args, tuple) and len(record.args) == 5
