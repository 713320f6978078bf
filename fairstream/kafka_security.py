"""Translate the Kafka security settings into each client library's configuration.

Every Kafka client of the project is configured here and nowhere else: librdkafka
properties for confluent-kafka (publisher, admin, lag collector, replay tools), keyword
arguments with an `ssl.SSLContext` for aiokafka (projection runner) and `broker_credentials`
for Faust (processors). The SASL password stays a `SecretStr` until the moment a client
is built, and no representation of `KafkaSecurity` shows it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from fairstream.settings import Settings, load_settings

__all__ = [
    "KafkaSecurity",
    "KafkaSecurityError",
    "SaslMechanism",
    "SecurityProtocol",
    "aiokafka_security",
    "faust_security",
    "librdkafka_security",
    "redact_client_config",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurityError(ValueError):
    """Signal security settings that cannot work together."""


@dataclass(frozen=True)
class KafkaSecurity:
    """Hold how a client authenticates to Kafka and verifies the broker."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            raise KafkaSecurityError(
                f"security protocol {self.protocol} needs FAIRSTREAM_KAFKA_SASL_USERNAME and "
                "FAIRSTREAM_KAFKA_SASL_PASSWORD (or FAIRSTREAM_KAFKA_SASL_PASSWORD_FILE)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise KafkaSecurityError("a client certificate needs both a certfile and a keyfile")

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """Build the security of `settings`, reading the password file if one is named."""
        password = settings.kafka_sasl_password
        if password is None and settings.kafka_sasl_password_file is not None:
            try:
                text = settings.kafka_sasl_password_file.read_text().strip()
            except OSError as exc:
                raise KafkaSecurityError(
                    f"cannot read FAIRSTREAM_KAFKA_SASL_PASSWORD_FILE "
                    f"{settings.kafka_sasl_password_file}: {exc.strerror}"
                ) from exc
            password = SecretStr(text)
        return cls(
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=password,
            ssl_cafile=settings.kafka_ssl_cafile,
            ssl_certfile=settings.kafka_ssl_certfile,
            ssl_keyfile=settings.kafka_ssl_keyfile,
            ssl_key_password=settings.kafka_ssl_key_password,
            ssl_check_hostname=settings.kafka_ssl_check_hostname,
        )

    @property
    def uses_sasl(self) -> bool:
        """Tell whether the client authenticates with SASL."""
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        """Tell whether the connection is encrypted with TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    def _password(self) -> str:
        return self.sasl_password.get_secret_value() if self.sasl_password else ""

    def librdkafka(self) -> dict[str, str]:
        """Return the librdkafka properties (confluent-kafka Producer, Consumer, AdminClient)."""
        config: dict[str, str] = {"security.protocol": self.protocol}
        if self.uses_sasl:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username or ""
            config["sasl.password"] = self._password()
        if self.uses_tls:
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_check_hostname else "none"
            )
            if self.ssl_cafile is not None:
                config["ssl.ca.location"] = str(self.ssl_cafile)
            if self.ssl_certfile is not None and self.ssl_keyfile is not None:
                config["ssl.certificate.location"] = str(self.ssl_certfile)
                config["ssl.key.location"] = str(self.ssl_keyfile)
                if self.ssl_key_password is not None:
                    config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        """Return the TLS context Python clients use, or None without TLS."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile is not None else None
        )
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile is not None and self.ssl_keyfile is not None:
            context.load_cert_chain(
                self.ssl_certfile,
                self.ssl_keyfile,
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
            )
        return context

    def aiokafka(self) -> dict[str, Any]:
        """Return the keyword arguments of AIOKafkaConsumer / AIOKafkaProducer."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self._password()
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        return options

    def faust(self) -> dict[str, Any]:
        """Return the Faust app settings: `broker_credentials` for every secured protocol."""
        import faust

        if self.uses_sasl:
            return {
                "broker_credentials": faust.SASLCredentials(
                    username=self.sasl_username,
                    password=self._password(),
                    ssl_context=self.ssl_context(),
                    mechanism=self.sasl_mechanism,
                )
            }
        if self.uses_tls:
            return {"broker_credentials": faust.SSLCredentials(self.ssl_context())}
        return {}


def _security(settings: Settings | None) -> KafkaSecurity:
    return KafkaSecurity.from_settings(settings if settings is not None else load_settings())


def librdkafka_security(settings: Settings | None = None) -> dict[str, str]:
    """Return the librdkafka security properties of `settings` (default: the environment)."""
    return _security(settings).librdkafka()


def aiokafka_security(settings: Settings | None = None) -> dict[str, Any]:
    """Return the aiokafka security arguments of `settings` (default: the environment)."""
    return _security(settings).aiokafka()


def faust_security(settings: Settings | None = None) -> dict[str, Any]:
    """Return the Faust security settings of `settings` (default: the environment)."""
    return _security(settings).faust()


def redact_client_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of a client configuration fit to show: every password as ***."""
    return {
        key: "***" if "password" in key.lower() and value is not None else value
        for key, value in config.items()
    }
