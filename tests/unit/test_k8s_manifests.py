"""Structural checks of deploy/k8s: every service deployed, probed, sized, scaled on its lag.

Parsed with PyYAML; no cluster needed. When `kubeconform` is installed and can reach its
schemas, the manifests are validated against the Kubernetes schemas too (skipped otherwise).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from events.topics import EVENT_TOPICS
from fairstream.bootstrap import PROCESSORS, PROJECTIONS
from fairstream.settings import REPO_ROOT, Settings

K8S = REPO_ROOT / "deploy" / "k8s"
PLACEHOLDER = "CHANGE-ME"
PARTITIONS = {spec.name: spec.partitions for spec in EVENT_TOPICS}
Doc = dict[str, Any]


@cache
def documents() -> tuple[Doc, ...]:
    """Return every Kubernetes object in the kustomization's resources, in order."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[Doc] = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / name).read_text()) if d)
    return tuple(docs)


def of_kind(kind: str) -> dict[str, Doc]:
    """Return the objects of one kind by name."""
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def config() -> dict[str, str]:
    """Return the data of the shared ConfigMap."""
    return dict(of_kind("ConfigMap")["fairstream-config"]["data"])


def containers(deployment: Doc) -> list[Doc]:
    """Return a Deployment's containers."""
    return list(deployment["spec"]["template"]["spec"]["containers"])


def test_every_manifest_file_is_a_resource_of_the_kustomization() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    names = [(d["kind"], d["metadata"]["name"]) for d in documents()]
    assert len(names) == len(set(names)), "duplicate object"


def test_every_service_has_a_deployment_running_it() -> None:
    deployments = of_kind("Deployment")
    expected = {f"fairstream-processor-{n}": ["processor", n] for n in ["bias", *PROCESSORS]}
    expected |= {f"fairstream-projection-{n}": ["projection", n] for n in PROJECTIONS}
    expected["fairstream-api"] = ["api"]
    assert set(deployments) == set(expected)
    for name, args in expected.items():
        [container] = containers(deployments[name])
        assert container["args"] == args, name


def _port_numbers(container: Doc) -> dict[str | int, int]:
    ports: dict[str | int, int] = {}
    for port in container.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


def _api_paths() -> set[str]:
    from api.app import create_app

    return {getattr(route, "path", "") for route in create_app(Settings()).routes}


def test_every_deployment_has_an_image_probes_requests_and_limits() -> None:
    metrics_port = int(config()["FAIRSTREAM_METRICS_PORT"])
    api_paths = _api_paths()
    for name, deployment in of_kind("Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
        for container in containers(deployment):
            image = container["image"]
            assert re.fullmatch(r"[\w.\-/:]+:[\w.\-]+", image), f"{name}: untagged image {image}"
            assert not image.endswith(":latest"), name
            resources = container["resources"]
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources[part].keys(), f"{name}: {part}"
            ports = _port_numbers(container)
            for probe in ("livenessProbe", "readinessProbe"):
                http = container[probe]["httpGet"]
                port = ports[http["port"]]
                if name == "fairstream-api":
                    assert http["path"] in api_paths, f"{name}: {probe} {http['path']}"
                    assert port == int(config()["FAIRSTREAM_API_PORT"])
                else:
                    # The only HTTP server of a worker: prometheus_client on the metrics port.
                    assert (http["path"], port) == ("/metrics", metrics_port), f"{name}: {probe}"
            sec = container["securityContext"]
            assert sec["readOnlyRootFilesystem"] and not sec["allowPrivilegeEscalation"], name


def test_every_env_source_exists_and_names_real_settings() -> None:
    configmaps, secrets = of_kind("ConfigMap"), of_kind("Secret")
    known = {f"FAIRSTREAM_{field.upper()}" for field in Settings.model_fields}
    for key in config():
        assert key in known, f"ConfigMap key {key} is no setting"
    for key in secrets["fairstream-secrets"]["stringData"]:
        assert key in known, f"Secret key {key} is no setting"
    for deployment in of_kind("Deployment").values():
        for container in containers(deployment):
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets


def _processor_group(name: str) -> str:
    env = f"FAIRSTREAM_{name.upper()}_PROCESSOR_GROUP"
    field = Settings.model_fields[f"{name}_processor_group"]
    return config().get(env, str(field.default))


def test_every_processor_scales_on_the_lag_of_its_own_group() -> None:
    scaled = of_kind("ScaledObject")
    auth = of_kind("TriggerAuthentication")
    prefix = config()["FAIRSTREAM_TOPIC_PREFIX"]
    assert set(scaled) == {f"fairstream-processor-{n}" for n in ["bias", *PROCESSORS]}
    for name in ["bias", *PROCESSORS]:
        spec = scaled[f"fairstream-processor-{name}"]["spec"]
        assert spec["scaleTargetRef"]["name"] == f"fairstream-processor-{name}"
        assert spec["triggers"], name
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            assert trigger["type"] == "kafka"
            meta = trigger["metadata"]
            assert meta["bootstrapServers"] == config()["FAIRSTREAM_KAFKA_BOOTSTRAP"]
            assert meta["consumerGroup"] == _processor_group(name), name
            topic = meta["topic"].removeprefix(prefix)
            assert topic in PARTITIONS, f"{name}: {topic} is not in events/topics.py"
            # More consumers than partitions would sit idle.
            assert spec["maxReplicaCount"] <= PARTITIONS[topic], f"{name}: {topic}"
            assert int(meta["lagThreshold"]) > 0
            assert trigger["authenticationRef"]["name"] in auth


def test_keda_reads_credentials_from_existing_secret_keys() -> None:
    secrets = of_kind("Secret")
    for trigger_auth in of_kind("TriggerAuthentication").values():
        refs = trigger_auth["spec"]["secretTargetRef"]
        assert {r["parameter"] for r in refs} >= {"sasl", "username", "password"}
        for ref in refs:
            assert ref["key"] in secrets[ref["name"]]["stringData"], ref


_SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|^password$", re.IGNORECASE)
# Long runs of key-like characters: base64/hex blobs, tokens, private keys.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/_=-]{24,}")
_KNOWN_SECRET_SHAPES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\bfs_[0-9a-f]{16}_[A-Za-z0-9_-]{32,}"),  # fairstream API key
)


def secret_problems(name: str, secret: Doc) -> list[str]:
    """Return why a Secret manifest might hold a real secret (empty if it holds none)."""
    problems = []
    if "data" in secret:
        problems.append(f"{name}: base64 `data` hides its values; use stringData")
    if secret["metadata"].get("annotations", {}).get("fairstream.io/placeholder") != "true":
        problems.append(f"{name}: not annotated fairstream.io/placeholder")
    for key, raw in (secret.get("stringData") or {}).items():
        value, where = str(raw), f"{name}.{key}"
        if _SECRET_KEY.search(key) and value != PLACEHOLDER:
            problems.append(f"{where}: not {PLACEHOLDER}")
        if "://" in value and urlsplit(value).password not in (None, PLACEHOLDER):
            problems.append(f"{where}: URL with a password other than {PLACEHOLDER}")
        if any(shape.search(value) for shape in _KNOWN_SECRET_SHAPES):
            problems.append(f"{where}: has the shape of a key")
        if _TOKEN_LIKE.search(re.sub(r"\S+://\S+", "", value)):
            problems.append(f"{where}: looks like a token")
    return problems


def test_no_secret_holds_anything_that_looks_real() -> None:
    secrets = of_kind("Secret")
    assert secrets
    for name, secret in secrets.items():
        assert secret_problems(name, secret) == []


@pytest.mark.parametrize(
    "string_data",
    [
        {"FAIRSTREAM_KAFKA_SASL_PASSWORD": "s3cr3t"},
        {"FAIRSTREAM_POSTGRES_DSN": "postgresql://fairstream:hunter2@db:5432/fs"},
        {"aws": "AKIAIOSFODNN7EXAMPLE"},
        {"note": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
        {"client": "fs_0123456789abcdef_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"},
    ],
)
def test_the_secret_check_catches_real_looking_values(string_data: dict[str, str]) -> None:
    secret = {
        "metadata": {"name": "x", "annotations": {"fairstream.io/placeholder": "true"}},
        "stringData": string_data,
    }
    assert secret_problems("x", secret)


def _kubeconform() -> str | None:
    found = shutil.which("kubeconform")
    if found:
        return found
    candidate = Path.home() / "go" / "bin" / "kubeconform"
    return str(candidate) if candidate.exists() else None


def _schema_locations() -> list[str] | None:
    """Return kubeconform's -schema-location flags, or None when no schema can be had."""
    local = os.environ.get("KUBECONFORM_SCHEMA_LOCATION")
    if local:
        return ["-schema-location", local]
    try:
        socket.getaddrinfo("raw.githubusercontent.com", 443)
    except OSError:
        return None
    return []


def test_manifests_validate_against_the_kubernetes_schemas() -> None:
    binary = _kubeconform()
    if binary is None:
        pytest.skip("kubeconform is not installed")
    locations = _schema_locations()
    if locations is None:
        pytest.skip("kubeconform's schemas are unreachable; set KUBECONFORM_SCHEMA_LOCATION")
    resources = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    # KEDA's CRDs have no schema in kubeconform's default catalog.
    result = subprocess.run(
        [
            binary,
            "-strict",
            "-summary",
            *locations,
            "-skip",
            "ScaledObject,TriggerAuthentication",
            *(str(K8S / name) for name in resources),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    if "failed downloading schema" in output:
        pytest.skip(f"kubeconform cannot download its schemas: {output[-300:]}")
    assert result.returncode == 0, output


def test_manifests_validate_against_the_bundled_kubernetes_schemas() -> None:
    """Validate offline with the schemas the `kubernetes-validate` package ships, if installed."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for doc in documents():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: no schema in the bundle
        kubernetes_validate.validate(doc, "1.31", strict=True)
        checked += 1
    assert checked >= 15  # ConfigMap, Secrets, Job, 14 Deployments, Services
