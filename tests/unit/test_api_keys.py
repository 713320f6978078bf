"""Unit tests of API key format, scrypt hashing and scope checks."""

from __future__ import annotations

import pytest

from api.keys import (
    KDF_NAME,
    SCOPES,
    InvalidKeyFormat,
    StoredHash,
    check_scopes,
    format_key,
    hash_secret,
    new_key,
    parse_key,
    verify_secret,
)


def test_a_new_key_round_trips_through_its_string_form() -> None:
    key = new_key()
    text = format_key(key)
    assert text.startswith(f"fs_{key.key_id}_")
    assert parse_key(text) == key


def test_two_new_keys_differ() -> None:
    assert new_key() != new_key()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "fs_",
        "fs_abc_def",
        "xx_0123456789abcdef_" + "a" * 43,
        "fs_0123456789ABCDEF_" + "a" * 43,
        "fs_0123456789abcdef_" + "a" * 10,
        "fs_0123456789abcdef_" + "a" * 40 + "!",
    ],
)
def test_malformed_keys_are_rejected(text: str) -> None:
    with pytest.raises(InvalidKeyFormat):
        parse_key(text)


def test_the_secret_verifies_and_others_do_not() -> None:
    stored = hash_secret("s3cret")
    assert stored.kdf == KDF_NAME
    assert len(stored.salt) == 16 and len(stored.secret_hash) == 32
    assert b"s3cret" not in stored.secret_hash
    assert verify_secret("s3cret", stored)
    assert not verify_secret("s3cret!", stored)
    assert not verify_secret("", stored)


def test_each_hash_has_its_own_salt() -> None:
    a, b = hash_secret("same"), hash_secret("same")
    assert a.salt != b.salt and a.secret_hash != b.secret_hash
    assert hash_secret("same", a.salt).secret_hash == a.secret_hash


def test_an_unknown_kdf_never_verifies() -> None:
    stored = hash_secret("s3cret")
    assert not verify_secret("s3cret", StoredHash("md5", stored.salt, stored.secret_hash))


def test_scopes_are_checked_and_put_in_canonical_order() -> None:
    assert check_scopes(["read:ops", "read:bias", "read:bias"]) == ("read:bias", "read:ops")
    assert check_scopes(list(SCOPES)) == SCOPES
    with pytest.raises(ValueError, match="unknown scope"):
        check_scopes(["write:bias"])
    with pytest.raises(ValueError, match="at least one"):
        check_scopes([])
