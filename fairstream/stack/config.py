"""Configuration of the local stack: versions, ports and the layout of the state directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fairstream.settings import REPO_ROOT

__all__ = [
    "COMPONENTS",
    "DEFAULT_KAFKA_VERSION",
    "FERRETDB_VERSION",
    "RESOURCES_DIR",
    "KafkaNode",
    "StackConfig",
    "StackLayout",
    "kafka_libs_dir",
    "kafka_tools_version_for",
]

COMPONENTS = ("kafka", "postgres", "redis", "ferretdb")
RESOURCES_DIR = Path(__file__).resolve().parent / "resources"

# The broker version the project pins; FAIRSTREAM_KAFKA_VERSION overrides it.
DEFAULT_KAFKA_VERSION = "4.4.0"
# Maven Central carries no kafka-tools / kafka-tools-api for these releases: take the tools
# (a client of the broker's public protocol) from the newest release that has them.
KAFKA_TOOLS_FALLBACK = {"4.4.0": "4.3.1"}
# Must match the `require` in resources/ferretdb/go.mod.
FERRETDB_VERSION = "v1.24.0"


def kafka_tools_version_for(kafka_version: str) -> str:
    """Return the kafka-tools release to pair with a broker release."""
    return KAFKA_TOOLS_FALLBACK.get(kafka_version, kafka_version)


def kafka_libs_dir(cache: Path, kafka_version: str, tools_version: str) -> Path:
    """Return the cache directory of one resolved Kafka classpath."""
    suffix = "" if tools_version == kafka_version else f"-tools-api-{tools_version}"
    return cache / f"kafka-{kafka_version}{suffix}" / "libs"


@dataclass(frozen=True)
class StackLayout:
    """Name every path under the stack directory (and the downloads cache)."""

    root: Path
    cache: Path

    @property
    def data(self) -> Path:
        """Return the parent of every component's data directory."""
        return self.root / "data"

    @property
    def logs(self) -> Path:
        """Return the directory of component log files."""
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Return the directory of pidfiles, sockets and run state."""
        return self.root / "run"

    @property
    def conf(self) -> Path:
        """Return the directory of rendered configuration files."""
        return self.root / "conf"

    @property
    def env_file(self) -> Path:
        """Return the path of the FAIRSTREAM_* environment file written by `up`."""
        return self.root / "env"

    @property
    def bin(self) -> Path:
        """Return the directory of binaries built by the stack."""
        return self.cache / "bin"


@dataclass(frozen=True)
class KafkaNode:
    """Describe one combined broker+controller node of the KRaft cluster."""

    node_id: int
    host: str
    port: int
    controller_port: int
    data_dir: Path
    config_path: Path

    @property
    def name(self) -> str:
        """Return the process name (pidfile and log file stem)."""
        return f"kafka-{self.node_id}"

    @property
    def bootstrap(self) -> str:
        """Return this node's client listener as host:port."""
        return f"{self.host}:{self.port}"

    @property
    def voter(self) -> str:
        """Return this node's entry in controller.quorum.voters."""
        return f"{self.node_id}@{self.host}:{self.controller_port}"


class StackConfig(BaseSettings):
    """Hold the local stack's knobs, read from FAIRSTREAM_STACK_* (and a few FAIRSTREAM_*) vars.

    Node i (0-based) of an N-broker cluster listens on kafka_port + 2i with its controller on
    kafka_controller_port + 2i, so the defaults give 9092/9093, 9094/9095, 9096/9097.
    """

    model_config = SettingsConfigDict(
        env_prefix="FAIRSTREAM_STACK_", extra="ignore", populate_by_name=True
    )

    stack_dir: Path = Field(
        default=REPO_ROOT / ".stack",
        validation_alias=AliasChoices("FAIRSTREAM_STACK_DIR"),
    )
    # Downloads and builds; defaults to <stack_dir>/cache. Point several stacks at one cache to
    # share the Kafka jars and the FerretDB binary.
    cache_dir: Path | None = None
    host: str = "127.0.0.1"

    kafka_version: str = Field(
        default=DEFAULT_KAFKA_VERSION,
        validation_alias=AliasChoices("FAIRSTREAM_KAFKA_VERSION", "FAIRSTREAM_STACK_KAFKA_VERSION"),
    )
    kafka_tools_version: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "FAIRSTREAM_KAFKA_TOOLS_VERSION", "FAIRSTREAM_STACK_KAFKA_TOOLS_VERSION"
        ),
    )
    brokers: int = Field(default=1, ge=1, le=9)
    # Client listener: PLAINTEXT, or SASL_SSL with SCRAM-SHA-512 and a CA generated in the
    # cluster's data directory (see KafkaCluster and README "Security").
    kafka_security: Literal["plaintext", "sasl_ssl"] = "plaintext"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"

    postgres_port: int = 5433
    postgres_user: str = "fairstream"
    postgres_database: str = "fairstream"
    postgres_bin_dir: Path | None = None
    # Unprivileged account that runs PostgreSQL when the stack is started as root.
    postgres_os_user: str = "postgres"

    redis_port: int = 6380
    redis_server: str = "redis-server"

    ferretdb_port: int = 27018
    ferretdb_backend: Literal["postgresql", "sqlite"] = "postgresql"
    ferretdb_database: str = "ferretdb"
    # Port of FerretDB's debug/metrics HTTP handler; None disables it.
    ferretdb_debug_port: int | None = None

    maven: str = "mvn"
    go: str = "go"
    java: str = "java"

    ready_timeout: float = 120.0

    @field_validator("kafka_version")
    @classmethod
    def _check_kafka_version(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"Kafka version must look like 4.4.0, got {value!r}")
        if int(parts[0]) < 3:
            raise ValueError("KRaft without ZooKeeper needs Kafka 3.x or newer")
        return value

    @property
    def layout(self) -> StackLayout:
        """Return the resolved paths of the stack directory."""
        root = self.stack_dir.resolve()
        cache = (self.cache_dir or root / "cache").resolve()
        return StackLayout(root=root, cache=cache)

    @property
    def kafka_major(self) -> int:
        """Return the Kafka major version."""
        return int(self.kafka_version.split(".")[0])

    @property
    def resolved_kafka_tools_version(self) -> str:
        """Return the kafka-tools release to fetch beside the broker."""
        return self.kafka_tools_version or kafka_tools_version_for(self.kafka_version)

    @property
    def kafka_libs(self) -> Path:
        """Return the cached `libs/` directory of the broker."""
        return kafka_libs_dir(
            self.layout.cache, self.kafka_version, self.resolved_kafka_tools_version
        )

    @property
    def kafka_tools_libs(self) -> Path:
        """Return the `libs/` directory the command line tools run from.

        It is the broker's own unless kafka-tools comes from another release.
        """
        tools = self.resolved_kafka_tools_version
        return kafka_libs_dir(self.layout.cache, tools, tools)

    @property
    def kafka_security_dir(self) -> Path:
        """Return where the CA, broker certificate and SCRAM passwords of the cluster live.

        It sits beside the nodes' storage, which holds the SCRAM credentials, so a purge
        removes both together.
        """
        return self.kafka_nodes()[0].data_dir.parent / "security"

    @property
    def internal_replication_factor(self) -> int:
        """Return the replication factor of internal topics: 1 for one broker, else min(N, 3)."""
        return 1 if self.brokers == 1 else min(self.brokers, 3)

    def kafka_nodes(self) -> list[KafkaNode]:
        """Return the port and directory plan of every KRaft node."""
        suffix = "" if self.kafka_security == "plaintext" else f"-{self.kafka_security}"
        data = self.layout.data / f"kafka-{self.kafka_version}-x{self.brokers}{suffix}"
        return [
            KafkaNode(
                node_id=i + 1,
                host=self.host,
                port=self.kafka_port + 2 * i,
                controller_port=self.kafka_controller_port + 2 * i,
                data_dir=data / f"node-{i + 1}",
                config_path=self.layout.conf / f"kafka-{i + 1}.properties",
            )
            for i in range(self.brokers)
        ]

    def planned_ports(self) -> dict[str, int]:
        """Map every listening port of the stack to its owner; raise ValueError on a clash."""
        owners: list[tuple[str, int]] = []
        for node in self.kafka_nodes():
            owners.append((node.name, node.port))
            owners.append((f"{node.name}-controller", node.controller_port))
        owners += [
            ("postgres", self.postgres_port),
            ("redis", self.redis_port),
            ("ferretdb", self.ferretdb_port),
        ]
        if self.ferretdb_debug_port is not None:
            owners.append(("ferretdb-debug", self.ferretdb_debug_port))
        plan: dict[str, int] = {}
        seen: dict[int, str] = {}
        for owner, port in owners:
            if not 0 < port < 65536:
                raise ValueError(f"{owner}: port {port} out of range")
            if port in seen:
                raise ValueError(f"port {port} is planned for both {seen[port]} and {owner}")
            seen[port] = owner
            plan[owner] = port
        return plan

    # Endpoints ---------------------------------------------------------------------------

    @property
    def kafka_bootstrap(self) -> str:
        """Return the comma-separated bootstrap servers of every node."""
        return ",".join(node.bootstrap for node in self.kafka_nodes())

    @property
    def postgres_dsn(self) -> str:
        """Return the DSN of the application database."""
        return (
            f"postgresql://{self.postgres_user}@{self.host}:{self.postgres_port}/"
            f"{self.postgres_database}"
        )

    def postgres_dsn_for(self, database: str) -> str:
        """Return the DSN of another database on the stack's server."""
        return f"postgresql://{self.postgres_user}@{self.host}:{self.postgres_port}/{database}"

    @property
    def redis_url(self) -> str:
        """Return the Redis URL (database 0)."""
        return f"redis://{self.host}:{self.redis_port}/0"

    @property
    def mongo_url(self) -> str:
        """Return the MongoDB URL of FerretDB."""
        return f"mongodb://{self.host}:{self.ferretdb_port}/"
