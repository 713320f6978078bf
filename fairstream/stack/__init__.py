"""The local stack: Kafka (KRaft), PostgreSQL, Redis and FerretDB as supervised local processes.

No containers: each component is installed from a package registry (Maven Central, the Go
module proxy, Debian's packages), configured under one state directory (`.stack/` by default)
and run by `ManagedProcess`, which the project's own services reuse.
"""

from __future__ import annotations

from fairstream.stack.config import KafkaNode, StackConfig, StackLayout
from fairstream.stack.exceptions import ComponentError, StackError
from fairstream.stack.kafka import kafka_tool_argv, run_kafka_tool
from fairstream.stack.local_stack import LocalStack
from fairstream.stack.supervisor import ManagedProcess, ProcessStartError, stop_all

__all__ = [
    "ComponentError",
    "KafkaNode",
    "LocalStack",
    "ManagedProcess",
    "ProcessStartError",
    "StackConfig",
    "StackError",
    "StackLayout",
    "kafka_tool_argv",
    "run_kafka_tool",
    "stop_all",
]
