"""Unit tests of the local stack's configuration, rendering and process supervisor (no services)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from fairstream.cli import build_parser
from fairstream.stack.config import (
    DEFAULT_KAFKA_VERSION,
    FERRETDB_VERSION,
    RESOURCES_DIR,
    StackConfig,
    kafka_tools_version_for,
)
from fairstream.stack.exceptions import ComponentError, StackError
from fairstream.stack.kafka import (
    BrokerSecurityFiles,
    ensure_broker_security,
    random_cluster_id,
    render_log4j_config,
    render_server_properties,
    resolve_tool_class,
    stack_client_env,
    stack_client_security,
)
from fairstream.stack.local_stack import LocalStack, parse_only, render_env_file
from fairstream.stack.postgres import path_reachable_by
from fairstream.stack.redis import render_redis_conf
from fairstream.stack.supervisor import ManagedProcess, ProcessStartError, stop_all


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("FAIRSTREAM_STACK_", "FAIRSTREAM_KAFKA_")):
            monkeypatch.delenv(key)


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_defaults_match_the_contract(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path)
    assert config.kafka_version == DEFAULT_KAFKA_VERSION
    assert config.kafka_bootstrap == "127.0.0.1:9092"
    assert config.kafka_nodes()[0].voter == "1@127.0.0.1:9093"
    assert config.postgres_dsn == "postgresql://fairstream@127.0.0.1:5433/fairstream"
    assert config.redis_url == "redis://127.0.0.1:6380/0"
    assert config.mongo_url == "mongodb://127.0.0.1:27018/"
    assert config.layout.cache == tmp_path.resolve() / "cache"
    assert config.layout.env_file == tmp_path.resolve() / "env"


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRSTREAM_KAFKA_VERSION", "3.9.1")
    monkeypatch.setenv("FAIRSTREAM_STACK_KAFKA_PORT", "19092")
    monkeypatch.setenv("FAIRSTREAM_STACK_REDIS_PORT", "16380")
    monkeypatch.setenv("FAIRSTREAM_STACK_CACHE_DIR", str(tmp_path / "shared-cache"))
    config = StackConfig(stack_dir=tmp_path / "s")
    assert config.kafka_version == "3.9.1"
    assert config.kafka_major == 3
    assert config.kafka_bootstrap == "127.0.0.1:19092"
    assert config.redis_port == 16380
    assert config.layout.cache == (tmp_path / "shared-cache").resolve()
    # Constructor arguments win over the environment.
    assert StackConfig(stack_dir=tmp_path, kafka_version="4.3.1").kafka_version == "4.3.1"


@pytest.mark.parametrize("version", ["4.4", "latest", "2.8.1"])
def test_rejects_bad_kafka_versions(tmp_path: Path, version: str) -> None:
    with pytest.raises(ValueError):
        StackConfig(stack_dir=tmp_path, kafka_version=version)


def test_port_plan_for_three_brokers(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path, brokers=3)
    nodes = config.kafka_nodes()
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 9092, 9093),
        (2, 9094, 9095),
        (3, 9096, 9097),
    ]
    assert config.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert len({n.data_dir for n in nodes}) == 3
    plan = config.planned_ports()
    assert plan["kafka-3-controller"] == 9097
    assert len(set(plan.values())) == len(plan)


def test_port_plan_rejects_clashes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="9094"):
        StackConfig(stack_dir=tmp_path, brokers=3, redis_port=9094).planned_ports()
    with pytest.raises(ValueError):
        StackConfig(stack_dir=tmp_path, kafka_controller_port=9092).planned_ports()


def test_single_broker_properties(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path)
    props = _props(render_server_properties(config, config.kafka_nodes()[0]))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["share.coordinator.state.topic.replication.factor"] == "1"
    assert "log.retention.hours" not in props
    assert props["log.dirs"] == str(config.kafka_nodes()[0].data_dir)


@pytest.mark.parametrize(("brokers", "rf", "min_isr"), [(2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_cluster_properties(tmp_path: Path, brokers: int, rf: int, min_isr: int) -> None:
    config = StackConfig(stack_dir=tmp_path, brokers=brokers, kafka_port=19092)
    node = config.kafka_nodes()[-1]
    props = _props(render_server_properties(config, node))
    voters = props["controller.quorum.voters"].split(",")
    assert len(voters) == brokers
    assert voters[-1] == f"{brokers}@127.0.0.1:{9093 + 2 * (brokers - 1)}"
    assert props["node.id"] == str(brokers)
    assert props["listeners"].startswith(f"PLAINTEXT://127.0.0.1:{19092 + 2 * (brokers - 1)},")
    assert props["offsets.topic.replication.factor"] == str(rf)
    assert props["default.replication.factor"] == str(rf)
    assert props["transaction.state.log.min.isr"] == str(min_isr)


def test_kafka3_properties_omit_kafka4_settings(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path, kafka_version="3.9.1")
    props = _props(render_server_properties(config, config.kafka_nodes()[0]))
    assert not any(key.startswith("share.") for key in props)


def _fake_security_files(config: StackConfig) -> BrokerSecurityFiles:
    files = BrokerSecurityFiles(config.kafka_security_dir)
    files.root.mkdir(parents=True)
    for path, secret in (
        (files.admin_password, "admin-secret"),
        (files.client_password, "client-secret"),
        (files.keystore_password, "store-secret"),
    ):
        path.write_text(secret + "\n")
    return files


def test_sasl_ssl_cluster_has_its_own_storage(tmp_path: Path) -> None:
    plain = StackConfig(stack_dir=tmp_path)
    secured = StackConfig(stack_dir=tmp_path, kafka_security="sasl_ssl")
    assert secured.kafka_nodes()[0].data_dir != plain.kafka_nodes()[0].data_dir
    assert secured.kafka_security_dir.parent == secured.kafka_nodes()[0].data_dir.parent
    assert secured.kafka_nodes()[0].data_dir.parent.name == "kafka-4.4.0-x1-sasl_ssl"


def test_sasl_ssl_properties(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path, kafka_security="sasl_ssl", kafka_port=49092)
    files = _fake_security_files(config)
    props = _props(render_server_properties(config, config.kafka_nodes()[0], files))
    assert props["listeners"] == "SASL_SSL://127.0.0.1:49092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:49092"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    jaas = props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert 'username="admin" password="admin-secret";' in jaas
    assert props["ssl.keystore.location"] == str(files.keystore)
    assert props["ssl.keystore.password"] == "store-secret"
    assert props["ssl.truststore.location"] == str(files.ca_cert)
    # The client user's password is the broker's business only through the metadata log.
    assert "client-secret" not in render_server_properties(config, config.kafka_nodes()[0], files)
    with pytest.raises(ValueError, match="security files"):
        render_server_properties(config, config.kafka_nodes()[0])


def test_sasl_ssl_client_env_names_the_password_file_only(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path, kafka_security="sasl_ssl")
    files = _fake_security_files(config)
    env = stack_client_env(config)
    assert env == {
        "FAIRSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FAIRSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FAIRSTREAM_KAFKA_SASL_USERNAME": "fairstream",
        "FAIRSTREAM_KAFKA_SASL_PASSWORD_FILE": str(files.client_password),
        "FAIRSTREAM_KAFKA_SSL_CAFILE": str(files.ca_cert),
    }
    security = stack_client_security(config)
    assert security.librdkafka()["sasl.password"] == "client-secret"
    assert stack_client_env(StackConfig(stack_dir=tmp_path)) == {
        "FAIRSTREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"
    }


def test_broker_security_files_are_generated_once(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path, kafka_security="sasl_ssl")
    files = ensure_broker_security(config)
    assert files.complete()
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(files.ca_cert), str(files.broker_cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(files.broker_cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    for secret in (files.admin_password, files.client_password, files.keystore_password):
        assert secret.stat().st_mode & 0o777 == 0o600
        assert len(secret.read_text().strip()) >= 30
    before = files.client_password.read_text()
    ensure_broker_security(config)
    assert files.client_password.read_text() == before
    log = config.layout.logs / "kafka-security.log"
    secrets = [p.read_text().strip() for p in (files.keystore_password, files.client_password)]
    assert all(secret not in log.read_text() for secret in secrets)


def test_log4j_configs_per_major_version() -> None:
    log4j2 = render_log4j_config(4)
    assert "appender.console.type = Console" in log4j2
    assert "rootLogger.level = INFO" in log4j2
    log4j1 = render_log4j_config(3, level="WARN", stream="stderr")
    assert "log4j.rootLogger=WARN, console" in log4j1
    assert "log4j.appender.console.Target=System.err" in log4j1


def test_tools_version_fallback_and_cache_dirs(tmp_path: Path) -> None:
    assert kafka_tools_version_for("4.4.0") == "4.3.1"
    assert kafka_tools_version_for("3.9.1") == "3.9.1"
    config = StackConfig(stack_dir=tmp_path)
    cache = config.layout.cache
    assert config.kafka_libs == cache / "kafka-4.4.0-tools-api-4.3.1" / "libs"
    assert config.kafka_tools_libs == cache / "kafka-4.3.1" / "libs"
    old = StackConfig(stack_dir=tmp_path, kafka_version="3.9.1")
    assert old.kafka_libs == old.kafka_tools_libs == cache / "kafka-3.9.1" / "libs"


def test_resolve_tool_class_prefers_present_candidate(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "kafka-tools-9.9.9.jar", "w") as jar:
        jar.writestr("kafka/admin/ConsumerGroupCommand.class", b"")
        jar.writestr("org/apache/kafka/tools/ProducerPerformance.class", b"")
    assert resolve_tool_class(tmp_path, "kafka-consumer-groups") == (
        "kafka.admin.ConsumerGroupCommand"
    )
    assert resolve_tool_class(tmp_path, "kafka-producer-perf-test.sh") == (
        "org.apache.kafka.tools.ProducerPerformance"
    )
    assert resolve_tool_class(tmp_path, "com.example.Main") == "com.example.Main"
    with pytest.raises(ComponentError):
        resolve_tool_class(tmp_path, "kafka-metadata-quorum")
    with pytest.raises(ComponentError):
        resolve_tool_class(tmp_path, "no-such-tool")


def test_random_cluster_id_shape() -> None:
    ids = {random_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) and i[0] != "-" for i in ids)


def test_redis_conf(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path, redis_port=16380)
    conf = render_redis_conf(config, tmp_path / "redis")
    assert "port 16380" in conf.splitlines()
    assert "bind 127.0.0.1" in conf.splitlines()
    assert f"dir {tmp_path / 'redis'}" in conf.splitlines()
    assert 'logfile ""' in conf.splitlines()


def test_parse_only() -> None:
    assert parse_only(None) == ["kafka", "postgres", "redis", "ferretdb"]
    assert parse_only("redis, kafka") == ["kafka", "redis"]
    assert parse_only(["ferretdb"]) == ["ferretdb"]
    with pytest.raises(StackError):
        parse_only("kafka,zookeeper")


def test_env_file_lists_every_endpoint(tmp_path: Path) -> None:
    config = StackConfig(stack_dir=tmp_path, brokers=3, postgres_port=15433)
    stack = LocalStack(config)
    env = stack.env_vars()
    assert env["FAIRSTREAM_KAFKA_BOOTSTRAP"] == config.kafka_bootstrap
    assert env["FAIRSTREAM_POSTGRES_DSN"].endswith(":15433/fairstream")
    assert env["FAIRSTREAM_REDIS_URL"] == config.redis_url
    assert env["FAIRSTREAM_MONGO_URL"] == config.mongo_url
    text = render_env_file(env)
    assert f"FAIRSTREAM_STACK_DIR={tmp_path.resolve()}" in text.splitlines()


def test_path_reachable_by(tmp_path: Path) -> None:
    nobody = 65534
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    try:
        target = closed / "inner" / "pgdata"  # need not exist yet
        assert not path_reachable_by(target, nobody, {nobody})
        assert path_reachable_by(target, os.getuid(), {os.getgid()})
    finally:
        closed.chmod(0o755)


def test_resources_pin_versions() -> None:
    go_mod = (RESOURCES_DIR / "ferretdb" / "go.mod").read_text()
    assert f"github.com/FerretDB/FerretDB {FERRETDB_VERSION}" in go_mod
    pom = ET.parse(RESOURCES_DIR / "kafka" / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    assert pom.findtext("m:properties/m:kafka.version", namespaces=ns) == DEFAULT_KAFKA_VERSION
    plugin = pom.find("m:build/m:plugins/m:plugin", ns)
    assert plugin is not None
    assert plugin.findtext("m:artifactId", namespaces=ns) == "maven-dependency-plugin"


def test_cli_parses_stack_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(["stack", "up", "--brokers", "3", "--only", "kafka"])
    assert (args.brokers, args.only) == (3, "kafka")
    args = parser.parse_args(["stack", "status", "--json"])
    assert args.json
    args = parser.parse_args(["stack", "down", "--purge"])
    assert args.purge and not args.purge_cache
    args = parser.parse_args(["stack", "kafka-tool", "kafka-consumer-groups", "--", "--list"])
    assert args.tool == "kafka-consumer-groups"
    assert args.args[-1] == "--list"


# Supervisor -------------------------------------------------------------------------------


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_managed_process_lifecycle(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", ["sh", "-c", "echo started; exec sleep 60"], tmp_path)
    pid = proc.start()
    try:
        assert proc.running()
        assert proc.pid == pid
        assert proc.pidfile.read_text().split()[0] == str(pid)
        assert proc.start() == pid  # idempotent
        assert os.getsid(pid) == pid  # own session
        assert _wait(lambda: "started" in proc.log_tail(5))
    finally:
        assert proc.stop(timeout=5)
    assert not proc.running()
    assert not proc.pidfile.exists()
    assert not proc.stop()


def test_managed_process_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "stubborn", ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"], tmp_path
    )
    proc.start()
    assert _wait(lambda: "ready" in proc.log_tail(5))
    started = time.monotonic()
    assert stop_all([proc], timeout=1.0)
    assert not proc.running()
    assert time.monotonic() - started < 10


def test_managed_process_cwd_and_env(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    proc = ManagedProcess(
        "printer",
        ["sh", "-c", 'pwd; echo "X=$X"; exec sleep 30'],
        tmp_path,
        {"PATH": os.environ["PATH"], "X": "42"},
        cwd=workdir,
    )
    proc.start()
    try:
        assert _wait(lambda: "X=42" in proc.log_tail(5))
        assert str(workdir) in proc.log_tail(5)
    finally:
        proc.stop(timeout=5)


def test_managed_process_ignores_recycled_pid(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", ["sleep", "1"], tmp_path)
    proc.pidfile.parent.mkdir(parents=True)
    proc.pidfile.write_text(f"{os.getpid()} 1\n")  # our pid, but a start time that isn't ours
    assert not proc.running()
    assert proc.pid is None


def test_managed_process_reports_exit(tmp_path: Path) -> None:
    proc = ManagedProcess("quitter", ["sh", "-c", "echo bye; exit 3"], tmp_path)
    # It may exit before its start time could even be read.
    with contextlib.suppress(ProcessStartError):
        proc.start()
    assert _wait(lambda: not proc.running())
    assert "bye" in proc.log_tail()
