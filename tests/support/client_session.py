"""A client kept sending through a rollout, and what it must show at the end.

Every real-pod rollout e2e has the same frame: start a client that sends inference
through the Service the whole time, do the rollout, read the client's final tally
and every failure it logged *before* stopping it (its tally is read from the running
client), then assert that the rollout cost the client nothing. This module is that
frame, so a test body holds only what differs (what it rolls out, what it waits for).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol


class Client(Protocol):
    """What the frame needs of a client (e2e/test_real_gated_rollout.py's LoopClient)."""

    def start(self) -> Client: ...

    def tally(self) -> dict[str, Any]: ...

    def failures(self) -> list[str]: ...

    def stop(self) -> None: ...


@dataclass
class Session:
    """The running client, and once the block has ended its final tally and failures."""

    client: Any
    tally: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def assert_unharmed(self, *, min_sent: int = 1) -> None:
        """No failure logged, no error counted, and it really sent."""
        assert self.failures == [], self.failures[:20]
        assert self.tally.get("errors") == 0, self.tally
        assert self.tally.get("sent", 0) >= min_sent, self.tally


@contextmanager
def client_session(client: Client) -> Iterator[Session]:
    """Start ``client``; on the way out (also on failure) read its tally and failures,
    then stop it. Assert with :meth:`Session.assert_unharmed` after the block."""
    session = Session(client.start())
    try:
        yield session
    finally:
        try:
            session.tally = client.tally()
            session.failures = client.failures()
        finally:
            client.stop()
        print(f"client: {session.tally}")
