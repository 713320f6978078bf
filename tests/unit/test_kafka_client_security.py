"""Unit tests of the one place Kafka security settings become client configuration."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from fairstream.kafka_security import (
    KafkaSecurity,
    KafkaSecurityError,
    aiokafka_security,
    librdkafka_security,
    redact_client_config,
)
from fairstream.settings import Settings, redact_url
from processors.faust_app import new_app
from producers.publisher import KafkaEventPublisher

CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("FAIRSTREAM_KAFKA_"):
            monkeypatch.delenv(key)


def _sasl_ssl(**changes: object) -> KafkaSecurity:
    options: dict[str, object] = {
        "protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "fairstream",
        "sasl_password": SecretStr("s3cret-value"),
        "ssl_cafile": CA,
        **changes,
    }
    return KafkaSecurity(**options)  # type: ignore[arg-type]


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    assert librdkafka_security(Settings()) == {"security.protocol": "PLAINTEXT"}
    assert aiokafka_security(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert KafkaSecurity().faust() == {}


def test_librdkafka_sasl_ssl() -> None:
    assert _sasl_ssl().librdkafka() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "fairstream",
        "sasl.password": "s3cret-value",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(CA),
    }
    assert (
        _sasl_ssl(ssl_check_hostname=False).librdkafka()["ssl.endpoint.identification.algorithm"]
        == "none"
    )


def test_aiokafka_sasl_ssl_has_a_verifying_context() -> None:
    options = _sasl_ssl().aiokafka()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "fairstream"
    assert options["sasl_plain_password"] == "s3cret-value"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_faust_gets_sasl_credentials_with_tls() -> None:
    credentials = _sasl_ssl(sasl_mechanism="SCRAM-SHA-256").faust()["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.ssl_context is not None
    assert "s3cret-value" not in repr(credentials)
    tls_only = KafkaSecurity(protocol="SSL", ssl_cafile=CA).faust()["broker_credentials"]
    assert isinstance(tls_only, faust.SSLCredentials)


def test_new_app_takes_the_security_of_its_settings(tmp_path: Path) -> None:
    settings = Settings(
        stack_dir=tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="fairstream",
        kafka_sasl_password=SecretStr("s3cret-value"),
        kafka_ssl_cafile=CA,
    )
    app = new_app(settings, "security-test")
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)
    assert app.conf.broker_credentials.username == "fairstream"


def test_password_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "client.password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("FAIRSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FAIRSTREAM_KAFKA_SASL_USERNAME", "fairstream")
    monkeypatch.setenv("FAIRSTREAM_KAFKA_SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("FAIRSTREAM_KAFKA_SSL_CAFILE", str(CA))
    config = librdkafka_security()  # no settings: read from the environment
    assert config["sasl.password"] == "from-a-file"
    assert config["ssl.ca.location"] == str(CA)
    monkeypatch.setenv("FAIRSTREAM_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(KafkaSecurityError, match="cannot read"):
        librdkafka_security()


def test_incomplete_settings_are_refused() -> None:
    with pytest.raises(KafkaSecurityError, match="SASL_USERNAME"):
        KafkaSecurity(protocol="SASL_SSL", sasl_username="fairstream")
    with pytest.raises(KafkaSecurityError, match="certfile and a keyfile"):
        KafkaSecurity(protocol="SSL", ssl_certfile=CA)


def test_no_secret_in_reprs() -> None:
    security = _sasl_ssl(ssl_key_password=SecretStr("key-secret"))
    for text in (repr(security), str(security)):
        assert "s3cret-value" not in text and "key-secret" not in text
    settings = Settings(
        kafka_sasl_password=SecretStr("s3cret-value"),
        kafka_ssl_key_password=SecretStr("key-secret"),
        postgres_dsn=SecretStr("postgresql://fairstream:pg-secret@127.0.0.1:5433/fairstream"),
        redis_url="redis://:redis-secret@127.0.0.1:6380/0",
        mongo_url="mongodb://fairstream:mongo-secret@127.0.0.1:27018/",
    )
    shown = repr(settings) + str(settings) + f"{settings}"
    for secret in ("s3cret-value", "key-secret", "pg-secret", "redis-secret", "mongo-secret"):
        assert secret not in shown
    assert "redis://:***@127.0.0.1:6380/0" in shown
    # The values themselves are intact for the clients.
    assert settings.redis_url == "redis://:redis-secret@127.0.0.1:6380/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6380/0", "redis://127.0.0.1:6380/0"),
        ("mongodb://u:p%40ss@h:1/?x=y", "mongodb://u:***@h:1/?x=y"),
        ("postgresql://user@h/db", "postgresql://user@h/db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_publisher_shows_its_config_with_the_password_masked() -> None:
    config = _sasl_ssl(ssl_key_password=SecretStr("key-secret")).librdkafka()
    assert redact_client_config(config)["sasl.password"] == "***"
    assert redact_client_config(config)["sasl.username"] == "fairstream"
    publisher = KafkaEventPublisher("127.0.0.1:1", flush_timeout=2, config=config)
    try:
        shown = dict(publisher.producer_config)
    finally:
        publisher.close()
    assert shown["sasl.password"] == "***"
    assert shown["security.protocol"] == "SASL_SSL"
    assert shown["acks"] == "all"
