"""Poll the API while something is broken and count its answers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import httpx

PROBED_PATHS: tuple[str, ...] = ("/v1/bias/results", "/v1/agent-tasks", "/v1/usage/models")


class ApiProbe:
    """Poll read-model routes in a thread; count status codes and 503s without Retry-After.

    A request with no answer counts as `api-down` when nothing listened (connection
    refused) or the API was killed while it waited (`api_kills` moved); otherwise as
    `error`, a request the running API failed to answer.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        paths: Sequence[str] = PROBED_PATHS,
        api_kills: Callable[[], int] = lambda: 0,
    ) -> None:
        self._url = base_url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._paths = list(paths)
        self._api_kills = api_kills
        self.statuses: Counter[str] = Counter()
        self.unavailable_without_retry_after = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-probe", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> dict[str, int]:
        """Stop polling; return the counts by status (`api-down` or `error` for no answer)."""
        self._stop.set()
        self._thread.join(30)
        return dict(self.statuses)

    def _run(self) -> None:
        with httpx.Client(base_url=self._url, headers=self._headers, timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                path = self._paths[i % len(self._paths)]
                i += 1
                kills = self._api_kills()
                try:
                    r = client.get(path, params={"limit": 5})
                except httpx.ConnectError:
                    self.statuses["api-down"] += 1
                except httpx.HTTPError:
                    killed = self._api_kills() != kills
                    self.statuses["api-down" if killed else "error"] += 1
                else:
                    self.statuses[str(r.status_code)] += 1
                    if r.status_code == 503 and "retry-after" not in r.headers:
                        self.unavailable_without_retry_after += 1
                time.sleep(0.2)
