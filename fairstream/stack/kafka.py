"""Apache Kafka in KRaft mode: jars from Maven Central, N combined broker+controller nodes.

The runtime classpath is resolved by Maven from `resources/kafka/pom.xml` into
`<cache>/kafka-<version>/libs` once; every node runs `java -cp 'libs/*' kafka.Kafka
<node>.properties`, its storage formatted beforehand with `kafka.tools.StorageTool format`.
The same classpath runs the command line tools (`run_kafka_tool`).
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
import subprocess
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    "KAFKA_TOOLS",
    "KafkaCluster",
    "ensure_kafka_libs",
    "ensure_kafka_tools_libs",
    "kafka_tool_argv",
    "random_cluster_id",
    "render_log4j_config",
    "render_server_properties",
    "resolve_tool_class",
    "run_kafka_tool",
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


def render_server_properties(config: StackConfig, node: KafkaNode) -> str:
    """Render server.properties of one combined broker+controller node."""
    nodes = config.kafka_nodes()
    rf = config.internal_replication_factor
    min_isr = max(1, rf - 1)
    props: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": ",".join(n.voter for n in nodes),
        "listeners": (
            f"PLAINTEXT://{node.host}:{node.port},CONTROLLER://{node.host}:{node.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{node.host}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
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
                f"runs on {state.get('bootstrap')}; run `fairstream stack down` first",
            )

    def _state(self) -> dict[str, Any]:
        return {
            "version": self.config.kafka_version,
            "tools_version": self.config.resolved_kafka_tools_version,
            "brokers": self.config.brokers,
            "bootstrap": self.config.kafka_bootstrap,
            "kafka_port": self.config.kafka_port,
            "kafka_controller_port": self.config.kafka_controller_port,
        }

    def prepare(self) -> None:
        """Fetch the jars, render configs and format every node's storage once."""
        self.check_shape()
        libs = ensure_kafka_libs(self.config)
        self.layout.conf.mkdir(parents=True, exist_ok=True)
        self._log4j_path().write_text(render_log4j_config(self.config.kafka_major))
        cluster_id = self._cluster_id()
        for node in self.nodes():
            node.config_path.write_text(render_server_properties(self.config, node))
            if (node.data_dir / "meta.properties").exists():
                continue
            node.data_dir.mkdir(parents=True, exist_ok=True)
            tools_log4j = (
                self.layout.conf / f"kafka-tools-log4j-{self.config.kafka_major}.properties"
            )
            tools_log4j.write_text(
                render_log4j_config(self.config.kafka_major, level="WARN", stream="stderr")
            )
            run_checked(
                "kafka",
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
                ],
                timeout=120,
                log=self.layout.logs / f"{node.name}.log",
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
            }
        )
        metadata = admin.list_topics(timeout=3)
        return len(metadata.brokers) == self.config.brokers

    def endpoints(self) -> dict[str, str]:
        """Return the bootstrap servers."""
        return {"bootstrap": self.config.kafka_bootstrap}

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
            "classpath": f"{self.config.kafka_libs}/*",
            "tools_classpath": f"{self.config.kafka_tools_libs}/*",
        }

    def data_paths(self) -> list[Path]:
        """Return every Kafka data directory (all versions and sizes) and the state file."""
        return [*self.layout.data.glob("kafka-*"), self.state_file]
