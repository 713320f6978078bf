"""`fairstream run | stop | services`: the whole local pipeline in the background."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from fairstream.services import managed_services
from fairstream.settings import Settings, load_settings

DEMO_TEXT = "Women are too emotional to be leaders."


def _fs(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("fairstream")), *args]


def _step(title: str, argv: list[str]) -> None:
    print(f"==> {title}", flush=True)
    done = subprocess.run(argv, check=False)
    if done.returncode != 0:
        raise SystemExit(f"fairstream run: '{title}' failed (exit {done.returncode})")


def services_up(settings: Settings) -> None:
    """Start every service in the background and wait until the API is ready."""
    for proc in managed_services(settings):
        pid = proc.start()
        print(f"    {proc.name:<26} pid {pid:<7} log {proc.log_path}")
    api = f"http://{settings.api_host}:{settings.api_port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for proc in managed_services(settings):
            if not proc.running():
                print(f"service {proc.name} exited; end of {proc.log_path}:\n{proc.log_tail(30)}")
                raise SystemExit(1)
        try:
            if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the API did not become ready at {api}/readyz within 90 s")


def services_down(settings: Settings) -> None:
    """Stop every background service."""
    for proc in reversed(managed_services(settings)):
        if proc.running():
            proc.stop()
            print(f"stopped {proc.name}")


def services_status(settings: Settings) -> list[dict[str, Any]]:
    """Describe every background service."""
    return [
        {"name": p.name, "running": p.running(), "pid": p.pid, "log": str(p.log_path)}
        for p in managed_services(settings)
    ]


async def _publish_demo(settings: Settings, content_id: str) -> None:
    from events.jsonform import event_from_json
    from fairstream.bootstrap import build_codec
    from producers.publisher import KafkaEventPublisher

    event = event_from_json(
        "ContentSubmitted",
        {"content_id": content_id, "text": DEMO_TEXT, "content_type": "blog_post"},
        source="fairstream-run",
    )
    publisher = KafkaEventPublisher(
        settings.kafka_bootstrap, build_codec(settings), topic_prefix=settings.topic_prefix
    )
    report = publisher.publish_all([event])
    if report.failed:
        raise SystemExit(f"publishing the demo content failed: {report}")


def _wait_for_answer(url: str, key: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=2, headers={"Authorization": f"Bearer {key}"})
            if r.status_code == 200:
                return dict(r.json())
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no answer from {url} within {timeout:.0f} s; see the logs under .stack/")


def _adopt_stack_env() -> None:
    """Point this process (and the services it starts) at the stack that is now up."""
    from fairstream.stack.config import StackConfig
    from fairstream.stack.local_stack import LocalStack

    for name, value in LocalStack(StackConfig()).env_vars().items():
        os.environ.setdefault(name, value)


READ_MODELS = {
    "bias results": "/v1/bias/results",
    "bias alerts": "/v1/bias/alerts",
    "bias daily roll-up": "/v1/bias/daily",
    "analytics windows": "/v1/analytics/windows",
    "model usage per day": "/v1/usage/models",
    "revenue projections": "/v1/revenue/projections",
    "campaigns": "/v1/campaigns",
    "opportunities": "/v1/opportunities",
    "agent tasks": "/v1/agent-tasks",
}


def _read_model_counts(api: str, key: str, wait: float) -> dict[str, int]:
    """Count the first page of every read model, waiting up to `wait` s for all to fill."""
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + wait
    counts: dict[str, int] = {}
    while True:
        for name, path in READ_MODELS.items():
            try:
                r = httpx.get(f"{api}{path}", params={"limit": 500}, headers=headers, timeout=5)
                counts[name] = len(r.json().get("items", [])) if r.status_code == 200 else 0
            except (httpx.TransportError, ValueError):
                counts[name] = 0
        if all(counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(2)


def run(args: argparse.Namespace) -> int:
    """Bring the stack and every service up, publish sample traffic, print where to look."""
    _step("stack up", _fs("stack", "up"))
    _adopt_stack_env()
    settings = load_settings()
    _step("topics apply", _fs("topics", "apply"))
    _step("migrate", _fs("migrate"))
    from api.keys import ensure_dev_key

    key_file = settings.stack_dir / "dev-api-key"
    key = ensure_dev_key(settings, key_file)
    print("==> services up", flush=True)
    services_up(settings)
    _step(
        f"sample traffic ({args.count} events)",
        _fs("generate", "--count", str(args.count), "--rate", str(args.rate)),
    )
    content_id = f"demo-{uuid.uuid4().hex[:8]}"
    asyncio.run(_publish_demo(settings, content_id))
    api = f"http://{settings.api_host}:{settings.api_port}"
    query = f"{api}/v1/content/{content_id}/bias"
    answer = _wait_for_answer(query, key)
    shown = {k: answer[k] for k in ("content_id", "overall_score", "level", "model_version")}
    top = sorted(answer["dimensions"].items(), key=lambda kv: -kv[1]["score"])[:3]
    shown["dimensions"] = {k: round(v["score"], 3) for k, v in top}
    print("==> waiting for every read model (1-minute windows close a minute after they end)")
    counts = _read_model_counts(api, key, args.wait)
    filled = "\n".join(
        f"  {name:<22} {counts[name]:>4}{'+' if counts[name] == 500 else ''} rows   GET {path}"
        for name, path in READ_MODELS.items()
    )
    print(
        f"""
Read models, first page through the API:
{filled}

fairstream is running.
  API            {api}   (OpenAPI UI: {api}/docs, metrics: {api}/metrics)
  stack          fairstream stack status
  service logs   {settings.stack_dir / "services" / "logs"}
  dev API key    {key}   (also in {key_file}; every read scope)
  consumer lag   {api}/lag?key={key}   (terminal: fairstream lag --watch)

Try:
  curl -s -H "Authorization: Bearer $(cat {key_file})" {query}
{json.dumps(shown, indent=2)}

Publish your own:
  echo '{{"content_id": "mine-1", "text": "Your text here"}}' \\
    | fairstream publish ContentSubmitted -
  curl -s -H "Authorization: Bearer $(cat {key_file})" {api}/v1/content/mine-1/bias

Stop everything: make stop"""
    )
    return 0


def stop(args: argparse.Namespace) -> int:
    """Stop the services and the local stack."""
    services_down(load_settings())
    return subprocess.run(_fs("stack", "down"), check=False).returncode


def services(args: argparse.Namespace) -> int:
    """Start, stop or describe the background services."""
    settings = load_settings()
    if args.action == "up":
        services_up(settings)
    elif args.action == "down":
        services_down(settings)
    for row in services_status(settings):
        state = f"running (pid {row['pid']})" if row["running"] else "stopped"
        print(f"{row['name']:<26} {state:<22} {row['log']}")
    return 0


def register(subparsers: Any) -> None:
    """Add `run`, `stop` and `services`."""
    p = subparsers.add_parser("run", help="stack + services + sample traffic in the background")
    p.add_argument("--count", type=int, default=300, help="sample events to publish")
    p.add_argument("--rate", type=float, default=200.0, help="sample events per second")
    p.add_argument(
        "--wait", type=float, default=150.0, help="seconds to wait for every read model to fill"
    )
    p.set_defaults(func=run)
    s = subparsers.add_parser("stop", help="stop the services and the local stack")
    s.set_defaults(func=stop)
    sv = subparsers.add_parser("services", help="manage the background services")
    sv.add_argument("action", choices=["up", "down", "status"])
    sv.set_defaults(func=services)
