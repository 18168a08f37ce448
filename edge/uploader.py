"""Delivery of queued results to the CrowdScope server, oldest first, each with its own Idempotency-Key.

What the server's answer means for a result:
- 2xx: stored (201 with `Idempotent-Replayed` when an earlier attempt had already got through; 202 for a frame
  the server's workers will count): delete it.
- no answer, 408, 429 or 5xx: the server is away or busy; keep it, wait (1 s doubling to a minute), try again.
- 401 or 403: the token or the camera's gateway is wrong on the server; keep everything until a person fixes it.
- any other 4xx: this result itself is refused (bad data); mark it rejected with the answer, go on with the rest.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from edge.outbox import Outbox, Queued

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
IDLE_POLL_S = 0.5
UPLOAD_TIMEOUT_S = 30.0
RETRY_STATUSES = {401, 403, 408, 429}


@dataclass
class DeliveryState:
    """What the health report says about delivery; written by the sending thread."""

    server_reachable: bool | None = None
    last_delivered_at: float | None = None
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Uploader:
    def __init__(self, server: str, token: str, outbox_path: Path, state: DeliveryState) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.outbox_path = outbox_path
        self.state = state
        self.wake = threading.Event()  # set when a result is queued, so an idle sender does not wait its poll out

    def run(self, stop: threading.Event) -> None:
        outbox = Outbox(self.outbox_path)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.token}"
        backoff = 1.0
        try:
            while not stop.is_set():
                try:
                    item = outbox.next_due()
                    if item is None:
                        self.wake.wait(IDLE_POLL_S)
                        self.wake.clear()
                        continue
                    settled = self._send(session, outbox, item)
                except sqlite3.Error as error:  # a busy or full disk: the queue is still there next time
                    log.error("outbox: %s", error)
                    settled = False
                if settled:
                    backoff = 1.0
                else:
                    stop.wait(backoff)
                    backoff = min(MAX_BACKOFF_S, backoff * 2)
        finally:
            outbox.close()

    def _send(self, session: requests.Session, outbox: Outbox, item: Queued) -> bool:
        """One attempt; True when it is settled (delivered or rejected), False when the server could not take it
        now (wait before the next)."""
        outgoing = item.outgoing
        try:
            response = session.post(
                f"{self.server}/api/v1/{outgoing.endpoint}/",
                data=outgoing.fields,
                files={outgoing.file_field: (outgoing.file_name, outgoing.payload)},
                headers={"Idempotency-Key": item.idempotency_key},
                timeout=UPLOAD_TIMEOUT_S,
            )
        except requests.RequestException as error:
            self._failed(outbox, item, f"server unreachable: {error.__class__.__name__}: {error}", reachable=False)
            return False
        if 200 <= response.status_code < 300:
            outbox.delivered(item)
            with self.state.lock:
                self.state.server_reachable, self.state.last_delivered_at = True, time.time()
                self.state.last_error = None
            return True
        answer = f"HTTP {response.status_code}: {response.text[:500]}"
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            self._failed(outbox, item, answer, reachable=True)
            return False
        log.error("the server refused the result captured at %s: %s", outgoing.captured_at, answer)
        outbox.rejected(item, answer)
        with self.state.lock:
            self.state.server_reachable, self.state.last_error = True, answer
        return True

    def _failed(self, outbox: Outbox, item: Queued, error: str, reachable: bool) -> None:
        if item.attempts == 0 or self.state.last_error != error:
            log.warning(
                "delivery of the result captured at %s failed, will retry: %s", item.outgoing.captured_at, error
            )
        outbox.failed_attempt(item, error)
        with self.state.lock:
            self.state.server_reachable, self.state.last_error = reachable, error
