"""Let an aiokafka client that has lost every broker find the cluster again.

aiokafka 0.14 (aio-libs/aiokafka#551, open) keeps the bootstrap connection only while the
cluster's metadata names no broker, and asks later metadata only of the brokers it knows
and of that connection. A broker that is still starting (or already stopping) answers a
metadata request with an empty broker list; if that connection then closes, the client
knows no broker and never contacts `bootstrap_servers` again: "Unable to update metadata
from []" forever, no socket open. An idempotent producer's `start` then waits for a
producer id for ever. The fault harness saw a projection started as the broker shut down
stay like that, its group empty and its partitions unread.

`install` wraps `AIOKafkaClient._metadata_update`: when the client knows no broker and has
no bootstrap connection, it bootstraps again from `bootstrap_servers` first.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.client import AIOKafkaClient, ConnectionGroup
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaConnectionError

log = logging.getLogger(__name__)

_BOOTSTRAP = ("bootstrap", ConnectionGroup.DEFAULT)

MetadataUpdate = Callable[[AIOKafkaClient, ClusterMetadata, Any], Awaitable[bool]]

_original: MetadataUpdate | None = None
# Clients that were told about losing every broker: one warning per episode, not per attempt.
_warned: weakref.WeakSet[AIOKafkaClient] = weakref.WeakSet()


def orphaned(client: AIOKafkaClient) -> bool:
    """Tell whether `client` knows no broker and holds no live bootstrap connection."""
    if client.cluster.brokers():
        return False
    conn = client._conns.get(_BOOTSTRAP)
    return conn is None or not conn.connected()


def install() -> None:
    """Make every aiokafka client in this process bootstrap again once it knows no broker."""
    global _original
    if _original is not None:
        return
    original: MetadataUpdate = AIOKafkaClient._metadata_update
    _original = original

    async def _metadata_update(
        self: AIOKafkaClient, cluster_metadata: ClusterMetadata, topics: Any
    ) -> bool:
        if orphaned(self):
            if self not in _warned:
                _warned.add(self)
                log.warning("kafka client knows no broker: bootstrapping again from %s", self.hosts)
            with contextlib.suppress(KafkaConnectionError):  # none answers yet: next update
                await self.bootstrap()
        if self in _warned and self.cluster.brokers():
            _warned.discard(self)
            log.warning("kafka client bootstrapped again: brokers %s", self.cluster.brokers())
        return await original(self, cluster_metadata, topics)

    AIOKafkaClient._metadata_update = _metadata_update


def uninstall() -> None:
    """Restore aiokafka's own metadata update (tests show the upstream behaviour with it)."""
    global _original
    if _original is not None:
        AIOKafkaClient._metadata_update = _original
        _original = None
