"""Apache Kafka in KRaft mode: jars from Maven Central, N combined broker+controller nodes.

The runtime classpath is resolved by Maven from `resources/kafka/pom.xml` into
`<cache>/kafka-<version>/libs` once; every node runs `java -cp 'libs/*' kafka.Kafka
<node>.properties`, its storage formatted beforehand with `kafka.tools.StorageTool format`.
The same classpath runs the command line tools (`run_kafka_tool`).
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from fairstream.kafka_security import KafkaSecurity, SaslMechanism
from fairstream.stack.component import (
    Component,
    file_lock,
    port_answers,
    require_executable,
    run_checked,
)
from fairstream.stack.config import RESOURCES_DIR, KafkaNode, StackConfig, kafka_libs_dir
from fairstream.stack.exceptions import ComponentError
from fairstream.stack.supervisor import ManagedProcess

__all__ = [
    "KAFKA_ADMIN_USER",
    "KAFKA_CLIENT_USER",
    "KAFKA_TOOLS",
    "SCRAM_MECHANISM",
    "BrokerSecurityFiles",
    "KafkaCluster",
    "ensure_broker_security",
    "ensure_kafka_libs",
    "ensure_kafka_tools_libs",
    "kafka_tool_argv",
    "random_cluster_id",
    "render_log4j_config",
    "render_server_properties",
    "resolve_tool_class",
    "run_kafka_tool",
    "stack_client_env",
    "stack_client_security",
]

POM = RESOURCES_DIR / "kafka" / "pom.xml"

# Script name of the Kafka distribution -> main class candidates, newest location first.
KAFKA_TOOLS: dict[str, tuple[str, ...]] = {
    "kafka-consumer-groups": (
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "kafka.admin.ConsumerGroupCommand",
    ),
    "kafka-producer-perf-test": ("org.apache.kafka.tools.ProducerPerformance",),
    "kafka-consumer-perf-test": (
        "org.apache.kafka.tools.ConsumerPerformance",
        "kafka.tools.ConsumerPerformance",
    ),
    "kafka-e2e-latency": ("org.apache.kafka.tools.EndToEndLatency", "kafka.tools.EndToEndLatency"),
    "kafka-topics": ("org.apache.kafka.tools.TopicCommand", "kafka.admin.TopicCommand"),
    "kafka-configs": ("org.apache.kafka.tools.ConfigCommand", "kafka.admin.ConfigCommand"),
    "kafka-console-consumer": (
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "kafka.tools.ConsoleConsumer",
    ),
    "kafka-console-producer": (
        "org.apache.kafka.tools.ConsoleProducer",
        "kafka.tools.ConsoleProducer",
    ),
    "kafka-get-offsets": ("org.apache.kafka.tools.GetOffsetShell", "kafka.tools.GetOffsetShell"),
    "kafka-metadata-quorum": ("org.apache.kafka.tools.MetadataQuorumCommand",),
    "kafka-features": ("org.apache.kafka.tools.FeatureCommand", "kafka.admin.FeatureCommand"),
    "kafka-cluster": ("org.apache.kafka.tools.ClusterTool", "kafka.tools.ClusterTool"),
    "kafka-log-dirs": ("org.apache.kafka.tools.LogDirsCommand", "kafka.admin.LogDirsCommand"),
    "kafka-reassign-partitions": (
        "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
        "kafka.admin.ReassignPartitionsCommand",
    ),
    "kafka-leader-election": (
        "org.apache.kafka.tools.LeaderElectionCommand",
        "kafka.admin.LeaderElectionCommand",
    ),
    "kafka-delete-records": (
        "org.apache.kafka.tools.DeleteRecordsCommand",
        "kafka.admin.DeleteRecordsCommand",
    ),
    "kafka-transactions": ("org.apache.kafka.tools.TransactionsCommand",),
    "kafka-acls": ("org.apache.kafka.tools.AclCommand", "kafka.admin.AclCommand"),
    "kafka-dump-log": ("org.apache.kafka.tools.DumpLogSegments", "kafka.tools.DumpLogSegments"),
    "kafka-storage": ("kafka.tools.StorageTool",),
}


def random_cluster_id() -> str:
    """Return a new KRaft cluster id (URL-safe base64 of a random UUID, like `random-uuid`)."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not value.startswith("-"):
            return value


KAFKA_ADMIN_USER = "admin"  # inter-broker SCRAM user
KAFKA_CLIENT_USER = "fairstream"  # the SCRAM user `fairstream stack env` hands to clients
SCRAM_MECHANISM: SaslMechanism = "SCRAM-SHA-512"


@dataclass(frozen=True)
class BrokerSecurityFiles:
    """Name the files of a SASL_SSL cluster: its CA, the broker's keystore, SCRAM passwords."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        """Return the CA certificate clients trust (PEM)."""
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """Return the CA's private key."""
        return self.root / "ca.key"

    @property
    def broker_cert(self) -> Path:
        """Return the broker certificate (PEM), valid for the stack's host and localhost."""
        return self.root / "broker.crt"

    @property
    def broker_key(self) -> Path:
        """Return the broker's private key (PEM)."""
        return self.root / "broker.key"

    @property
    def keystore(self) -> Path:
        """Return the broker's PKCS12 keystore (key, certificate and CA chain)."""
        return self.root / "broker.p12"

    @property
    def keystore_password(self) -> Path:
        """Return the file holding the keystore password."""
        return self.root / "keystore.password"

    @property
    def admin_password(self) -> Path:
        """Return the file holding the inter-broker SCRAM user's password."""
        return self.root / f"{KAFKA_ADMIN_USER}.password"

    @property
    def client_password(self) -> Path:
        """Return the file holding the client SCRAM user's password."""
        return self.root / f"{KAFKA_CLIENT_USER}.password"

    def complete(self) -> bool:
        """Tell whether every file exists."""
        return all(
            p.exists()
            for p in (
                self.ca_cert,
                self.keystore,
                self.keystore_password,
                self.admin_password,
                self.client_password,
            )
        )

    @staticmethod
    def read_secret(path: Path) -> SecretStr:
        """Return the secret stored in one of the password files."""
        return SecretStr(path.read_text().strip())


def _write_secret(path: Path) -> None:
    # URL-safe alphabet: no character that SCRAM or JAAS syntax would need quoted.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(24) + "\n")


def _subject_alt_names(host: str) -> str:
    names = {"DNS:localhost", "IP:127.0.0.1"}
    try:
        ipaddress.ip_address(host)
        names.add(f"IP:{host}")
    except ValueError:
        names.add(f"DNS:{host}")
    return ",".join(sorted(names))


def ensure_broker_security(config: StackConfig) -> BrokerSecurityFiles:
    """Generate a CA, the broker certificate and keystore, and SCRAM passwords, once.

    Every secret goes through files (`-passout file:`), never a command line or a log.
    """
    files = BrokerSecurityFiles(config.kafka_security_dir)
    if files.complete():
        return files
    openssl = require_executable("kafka", "openssl")
    root = files.root
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    log = config.layout.logs / "kafka-security.log"
    for path in (files.keystore_password, files.admin_password, files.client_password):
        _write_secret(path)
    days = "825"
    run_checked(
        "kafka",
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-keyout", str(files.ca_key), "-out", str(files.ca_cert), "-days", days,
            "-subj", "/CN=fairstream local stack CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        log=log,
    )  # fmt: skip
    csr = root / "broker.csr"
    run_checked(
        "kafka",
        [
            openssl, "req", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-keyout", str(files.broker_key), "-out", str(csr), "-subj", f"/CN={config.host}",
        ],
        log=log,
    )  # fmt: skip
    extensions = root / "broker.ext"
    extensions.write_text(
        f"subjectAltName={_subject_alt_names(config.host)}\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    run_checked(
        "kafka",
        [
            openssl, "x509", "-req", "-sha256", "-in", str(csr), "-CA", str(files.ca_cert),
            "-CAkey", str(files.ca_key), "-CAcreateserial", "-out", str(files.broker_cert),
            "-days", days, "-extfile", str(extensions),
        ],
        log=log,
    )  # fmt: skip
    run_checked(
        "kafka",
        [
            openssl, "pkcs12", "-export", "-in", str(files.broker_cert),
            "-inkey", str(files.broker_key), "-certfile", str(files.ca_cert), "-name", "broker",
            "-out", str(files.keystore), "-passout", f"file:{files.keystore_password}",
        ],
        log=log,
    )  # fmt: skip
    for path in (files.ca_key, files.broker_key, files.keystore):
        path.chmod(0o600)
    return files


def stack_client_security(config: StackConfig) -> KafkaSecurity:
    """Return how a client reaches this stack's cluster (the client SCRAM user over TLS)."""
    if config.kafka_security == "plaintext":
        return KafkaSecurity()
    files = BrokerSecurityFiles(config.kafka_security_dir)
    return KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism=SCRAM_MECHANISM,
        sasl_username=KAFKA_CLIENT_USER,
        sasl_password=files.read_secret(files.client_password),
        ssl_cafile=files.ca_cert,
    )


def stack_client_env(config: StackConfig) -> dict[str, str]:
    """Return the FAIRSTREAM_KAFKA_* security variables of this stack; the password by file."""
    if config.kafka_security == "plaintext":
        return {"FAIRSTREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    files = BrokerSecurityFiles(config.kafka_security_dir)
    return {
        "FAIRSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FAIRSTREAM_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "FAIRSTREAM_KAFKA_SASL_USERNAME": KAFKA_CLIENT_USER,
        "FAIRSTREAM_KAFKA_SASL_PASSWORD_FILE": str(files.client_password),
        "FAIRSTREAM_KAFKA_SSL_CAFILE": str(files.ca_cert),
    }


def _listener_properties(
    config: StackConfig, node: KafkaNode, files: BrokerSecurityFiles | None
) -> dict[str, str | int]:
    controller = f"CONTROLLER://{node.host}:{node.controller_port}"
    if config.kafka_security == "plaintext":
        return {
            "listeners": f"PLAINTEXT://{node.host}:{node.port},{controller}",
            "advertised.listeners": f"PLAINTEXT://{node.host}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        }
    if files is None:
        raise ValueError("a SASL_SSL listener needs the cluster's security files")
    admin = files.read_secret(files.admin_password).get_secret_value()
    store = files.read_secret(files.keystore_password).get_secret_value()
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{KAFKA_ADMIN_USER}" password="{admin}";'
    )
    mechanism = SCRAM_MECHANISM.lower()
    # The controller listener stays PLAINTEXT on the loopback host: only the nodes use it.
    return {
        "listeners": f"SASL_SSL://{node.host}:{node.port},{controller}",
        "advertised.listeners": f"SASL_SSL://{node.host}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        f"listener.name.sasl_ssl.{mechanism}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(files.keystore),
        "ssl.keystore.password": store,
        "ssl.key.password": store,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca_cert),
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.client.auth": "none",
    }


def render_server_properties(
    config: StackConfig, node: KafkaNode, files: BrokerSecurityFiles | None = None
) -> str:
    """Render server.properties of one combined broker+controller node.

    A SASL_SSL cluster's file carries the keystore and inter-broker passwords from `files`;
    it is written readable by its owner only.
    """
    nodes = config.kafka_nodes()
    rf = config.internal_replication_factor
    min_isr = max(1, rf - 1)
    props: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": ",".join(n.voter for n in nodes),
        **_listener_properties(config, node, files),
        "log.dirs": str(node.data_dir),
        # Topics are created as code; internal topics still work on a single broker.
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "default.replication.factor": rf,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": 0,
        "delete.topic.enable": "true",
    }
    if config.kafka_major >= 4:
        props["share.coordinator.state.topic.replication.factor"] = rf
        props["share.coordinator.state.topic.min.isr"] = min_isr
    lines = [f"# Rendered by fairstream stack for Kafka {config.kafka_version}; do not edit."]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


# Quiet loggers that flood a development log without helping anyone read it.
_QUIET_LOGGERS = (
    "org.apache.kafka.common.config.AbstractConfig",
    "kafka.request.logger",
    "state.change.logger",
    "kafka.authorizer.logger",
    "org.apache.kafka.clients",
)


def render_log4j_config(kafka_major: int, level: str = "INFO", stream: str = "stdout") -> str:
    """Render a console log4j config (log4j2 properties for Kafka 4, log4j 1.x for Kafka 3).

    The supervisor appends stdout and stderr to the component's log file, so a console
    appender is all a node needs.
    """
    pattern = "[%d] %p %m (%c)%n"
    if kafka_major >= 4:
        target = "SYSTEM_ERR" if stream == "stderr" else "SYSTEM_OUT"
        lines = [
            "status = warn",
            "appender.console.type = Console",
            "appender.console.name = CONSOLE",
            f"appender.console.target = {target}",
            "appender.console.layout.type = PatternLayout",
            f"appender.console.layout.pattern = {pattern}",
            f"rootLogger.level = {level}",
            "rootLogger.appenderRef.console.ref = CONSOLE",
        ]
        for i, name in enumerate(_QUIET_LOGGERS):
            lines += [f"logger.q{i}.name = {name}", f"logger.q{i}.level = WARN"]
    else:
        target = "System.err" if stream == "stderr" else "System.out"
        lines = [
            f"log4j.rootLogger={level}, console",
            "log4j.appender.console=org.apache.log4j.ConsoleAppender",
            f"log4j.appender.console.Target={target}",
            "log4j.appender.console.layout=org.apache.log4j.PatternLayout",
            f"log4j.appender.console.layout.ConversionPattern={pattern}",
        ]
        lines += [f"log4j.logger.{name}=WARN" for name in _QUIET_LOGGERS]
    return "\n".join(lines) + "\n"


def log4j_jvm_flag(kafka_major: int, path: Path) -> str:
    """Return the JVM flag that points the logging backend at `path`."""
    if kafka_major >= 4:
        return f"-Dlog4j2.configurationFile={path}"
    return f"-Dlog4j.configuration=file:{path}"


def ensure_kafka_libs(config: StackConfig, version: str | None = None) -> Path:
    """Fetch a Kafka classpath with Maven unless cached; return its libs directory.

    Without `version`, fetch the broker's classpath (with kafka-tools when Maven Central has
    them for that release); with it, the complete classpath of that release, tools included.
    """
    if version is None or version == config.kafka_version:
        version = config.kafka_version
        tools_version = config.resolved_kafka_tools_version
    else:
        tools_version = version
    libs = kafka_libs_dir(config.layout.cache, version, tools_version)
    marker = libs.parent / ".complete"
    if marker.exists():
        return libs
    mvn = require_executable("kafka", config.maven)
    require_executable("kafka", config.java)
    with file_lock(config.layout.cache / ".kafka-fetch.lock"):
        if marker.exists():
            return libs
        if libs.exists():
            shutil.rmtree(libs)
        work = libs.parent
        work.mkdir(parents=True, exist_ok=True)
        # Run Maven on a copy so its target/ stays out of the repository.
        shutil.copyfile(POM, work / "pom.xml")
        argv = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(work / "pom.xml"),
            f"-Dmaven.repo.local={config.layout.cache / 'm2'}",
            f"-Dkafka.version={version}",
            f"-Dkafka.tools.version={tools_version}",
            f"-Dkafka.major={version.split('.')[0]}",
            f"-Dkafka.libs={libs}",
        ]
        if tools_version == version:
            argv.append("-Dkafka.with.tools=true")
        argv.append("dependency:copy-dependencies")
        run_checked("kafka", argv, timeout=1200, log=config.layout.logs / "kafka-fetch.log")
        jars = sorted(p.name for p in libs.glob("*.jar"))
        if f"kafka_2.13-{version}.jar" not in jars:
            raise ComponentError("kafka", f"Maven did not produce kafka_2.13-{version} in {libs}")
        marker.write_text(json.dumps({"argv": argv, "jars": jars}, indent=1) + "\n")
    return libs


def ensure_kafka_tools_libs(config: StackConfig) -> Path:
    """Return the classpath of the command line tools, fetching it if needed."""
    tools_version = config.resolved_kafka_tools_version
    if tools_version == config.kafka_version:
        return ensure_kafka_libs(config)
    return ensure_kafka_libs(config, tools_version)


@functools.lru_cache(maxsize=8)
def _kafka_classes(libs: Path) -> frozenset[str]:
    names: set[str] = set()
    for jar in sorted(libs.glob("kafka*.jar")):
        with zipfile.ZipFile(jar) as archive:
            names.update(
                n[: -len(".class")].replace("/", ".")
                for n in archive.namelist()
                if n.endswith(".class") and "$" not in n
            )
    return frozenset(names)


def resolve_tool_class(libs: Path, tool: str) -> str:
    """Return the main class of a tool name (e.g. kafka-consumer-groups) in these jars.

    A fully qualified class name is returned as is.
    """
    candidates = KAFKA_TOOLS.get(tool.removesuffix(".sh"))
    if candidates is None:
        if "." in tool:
            return tool
        raise ComponentError("kafka", f"unknown Kafka tool {tool!r}; known: {sorted(KAFKA_TOOLS)}")
    classes = _kafka_classes(libs)
    for candidate in candidates:
        if candidate in classes:
            return candidate
    raise ComponentError("kafka", f"{tool}: none of {candidates} is on the classpath {libs}")


def kafka_tool_argv(config: StackConfig, tool: str, args: Sequence[str]) -> list[str]:
    """Return the java command line that runs a Kafka tool on the stack's classpath."""
    libs = ensure_kafka_tools_libs(config)
    main_class = resolve_tool_class(libs, tool)
    major = int(config.resolved_kafka_tools_version.split(".")[0])
    log_config = config.layout.conf / f"kafka-tools-log4j-{major}.properties"
    log_config.parent.mkdir(parents=True, exist_ok=True)
    log_config.write_text(render_log4j_config(major, level="WARN", stream="stderr"))
    return [
        config.java,
        "-Xmx512m",
        "-Djava.awt.headless=true",
        log4j_jvm_flag(major, log_config),
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def run_kafka_tool(
    config: StackConfig,
    tool: str,
    args: Sequence[str],
    *,
    timeout: float = 300,
    capture: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a Kafka command line tool (kafka-consumer-groups, kafka-producer-perf-test, ...)."""
    argv = kafka_tool_argv(config, tool, args)
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )


class KafkaCluster(Component):
    """Run an N-node KRaft cluster on loopback, every node broker and controller."""

    name = "kafka"
    start_order = 10

    @property
    def state_file(self) -> Path:
        """Return the file describing the cluster started last (version, brokers, ports)."""
        return self.layout.run / "kafka.json"

    def nodes(self) -> list[KafkaNode]:
        """Return the node plan."""
        return self.config.kafka_nodes()

    def _log4j_path(self) -> Path:
        return self.layout.conf / f"kafka-log4j-{self.config.kafka_major}.properties"

    def processes(self) -> list[ManagedProcess]:
        """Return one supervised JVM per node."""
        libs = self.config.kafka_libs
        heap = self.config.kafka_heap
        return [
            ManagedProcess(
                node.name,
                [
                    self.config.java,
                    "-Xms256m",
                    f"-Xmx{heap}",
                    "-XX:+UseG1GC",
                    "-XX:MaxGCPauseMillis=20",
                    "-XX:+ExitOnOutOfMemoryError",
                    "-Djava.awt.headless=true",
                    log4j_jvm_flag(self.config.kafka_major, self._log4j_path()),
                    "-cp",
                    f"{libs}/*",
                    "kafka.Kafka",
                    str(node.config_path),
                ],
                self.layout.root,
                self.base_env(),
                stop_timeout=45.0,
            )
            for node in self.nodes()
        ]

    def listen_ports(self) -> list[int]:
        """Return every client and controller port."""
        return [p for n in self.nodes() for p in (n.port, n.controller_port)]

    def _cluster_id(self) -> str:
        path = self.nodes()[0].data_dir.parent / "cluster.id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(random_cluster_id() + "\n")
        return path.read_text().strip()

    def check_shape(self) -> None:
        """Refuse to start when a cluster of another version or size runs from this stack."""
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        state.setdefault("security", "plaintext")  # state files written before it existed
        wanted = self._state()
        if state == wanted:
            return
        running = [
            ManagedProcess(f"kafka-{i + 1}", ["true"], self.layout.root).running()
            for i in range(int(state.get("brokers", 0)))
        ]
        if any(running):
            raise ComponentError(
                "kafka",
                f"a Kafka {state.get('version')} cluster of {state.get('brokers')} node(s) "
                f"({state['security']}) runs on {state.get('bootstrap')}; "
                "run `fairstream stack down` first",
            )

    def _state(self) -> dict[str, Any]:
        return {
            "version": self.config.kafka_version,
            "tools_version": self.config.resolved_kafka_tools_version,
            "brokers": self.config.brokers,
            "bootstrap": self.config.kafka_bootstrap,
            "kafka_port": self.config.kafka_port,
            "kafka_controller_port": self.config.kafka_controller_port,
            "security": self.config.kafka_security,
        }

    def _scram_arguments(self, files: BrokerSecurityFiles | None) -> tuple[list[str], list[str]]:
        """Return the `format --add-scram` arguments and the secrets they carry."""
        if files is None:
            return [], []
        args: list[str] = []
        hidden: list[str] = []
        for user, path in (
            (KAFKA_ADMIN_USER, files.admin_password),
            (KAFKA_CLIENT_USER, files.client_password),
        ):
            password = files.read_secret(path).get_secret_value()
            args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
            hidden.append(password)
        return args, hidden

    def _format_storage(self, argv: list[str], hidden: Sequence[str], log: Path) -> None:
        """Run `StorageTool format`; the SCRAM passwords never reach the log or an error."""

        def redact(text: str) -> str:
            for secret in hidden:
                text = text.replace(secret, "***")
            return text

        shown = redact(" ".join(argv))
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ComponentError("kafka", f"timed out after 120s: {shown}") from None
        output = redact(result.stdout)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as handle:
            handle.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {shown}\n{output}")
        if result.returncode != 0:
            tail = "\n".join(output.splitlines()[-30:])
            raise ComponentError("kafka", f"exit code {result.returncode}: {shown}", tail)

    def prepare(self) -> None:
        """Fetch the jars, render configs and format every node's storage once.

        A SASL_SSL cluster first gets its CA, broker keystore and passwords; its SCRAM users
        are written into the metadata log by `format --add-scram`.
        """
        self.check_shape()
        libs = ensure_kafka_libs(self.config)
        self.layout.conf.mkdir(parents=True, exist_ok=True)
        self._log4j_path().write_text(render_log4j_config(self.config.kafka_major))
        cluster_id = self._cluster_id()
        files = None
        if self.config.kafka_security == "sasl_ssl":
            formatted = (self.nodes()[0].data_dir / "meta.properties").exists()
            if formatted and not BrokerSecurityFiles(self.config.kafka_security_dir).complete():
                raise ComponentError(
                    "kafka",
                    f"the SASL_SSL cluster's storage exists but its security files in "
                    f"{self.config.kafka_security_dir} are incomplete; run "
                    "`fairstream stack down --purge --only kafka`",
                )
            files = ensure_broker_security(self.config)
        scram_args, hidden = self._scram_arguments(files)
        for node in self.nodes():
            node.config_path.touch(mode=0o600, exist_ok=True)
            node.config_path.chmod(0o600 if files is not None else 0o644)
            node.config_path.write_text(render_server_properties(self.config, node, files))
            if (node.data_dir / "meta.properties").exists():
                continue
            node.data_dir.mkdir(parents=True, exist_ok=True)
            tools_log4j = (
                self.layout.conf / f"kafka-tools-log4j-{self.config.kafka_major}.properties"
            )
            tools_log4j.write_text(
                render_log4j_config(self.config.kafka_major, level="WARN", stream="stderr")
            )
            self._format_storage(
                [
                    self.config.java,
                    log4j_jvm_flag(self.config.kafka_major, tools_log4j),
                    "-cp",
                    f"{libs}/*",
                    "kafka.tools.StorageTool",
                    "format",
                    "--cluster-id",
                    cluster_id,
                    "--config",
                    str(node.config_path),
                    "--ignore-formatted",
                    *scram_args,
                ],
                hidden,
                self.layout.logs / f"{node.name}.log",
            )

    def start(self) -> None:
        """Start every node and record the cluster's shape."""
        super().start()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self._state(), indent=1) + "\n")

    def probe(self) -> bool:
        """Ask for cluster metadata and require every broker to be registered."""
        from confluent_kafka.admin import AdminClient

        if not all(port_answers(n.host, n.port) for n in self.nodes()):
            return False
        admin = AdminClient(
            {
                "bootstrap.servers": self.config.kafka_bootstrap,
                "socket.timeout.ms": 3000,
                "log_level": 2,  # errors only: connection refusals while starting are expected
                **stack_client_security(self.config).librdkafka(),
            }
        )
        metadata = admin.list_topics(timeout=3)
        return len(metadata.brokers) == self.config.brokers

    def endpoints(self) -> dict[str, str]:
        """Return the bootstrap servers and the client listener's security protocol."""
        protocol = "PLAINTEXT" if self.config.kafka_security == "plaintext" else "SASL_SSL"
        return {"bootstrap": self.config.kafka_bootstrap, "security_protocol": protocol}

    def client_env(self) -> dict[str, str]:
        """Return the FAIRSTREAM_KAFKA_* security variables a client of this cluster needs."""
        return stack_client_env(self.config)

    def detail(self) -> dict[str, Any]:
        """Return version, node plan and data location."""
        return {
            "version": self.config.kafka_version,
            "tools_version": self.config.resolved_kafka_tools_version,
            "brokers": self.config.brokers,
            "nodes": [
                {
                    "node_id": n.node_id,
                    "bootstrap": n.bootstrap,
                    "controller": f"{n.host}:{n.controller_port}",
                    "pid": proc.pid,
                    "data_dir": str(n.data_dir),
                    "log": str(proc.log_path),
                }
                for n, proc in zip(self.nodes(), self.processes(), strict=True)
            ],
            "security": self._security_detail(),
            "classpath": f"{self.config.kafka_libs}/*",
            "tools_classpath": f"{self.config.kafka_tools_libs}/*",
        }

    def _security_detail(self) -> dict[str, str]:
        if self.config.kafka_security == "plaintext":
            return {"protocol": "PLAINTEXT"}
        files = BrokerSecurityFiles(self.config.kafka_security_dir)
        return {
            "protocol": "SASL_SSL",
            "sasl_mechanism": SCRAM_MECHANISM,
            "username": KAFKA_CLIENT_USER,
            "password_file": str(files.client_password),
            "ca_file": str(files.ca_cert),
        }

    def data_paths(self) -> list[Path]:
        """Return every Kafka data directory (all versions and sizes) and the state file."""
        return [*self.layout.data.glob("kafka-*"), self.state_file]
