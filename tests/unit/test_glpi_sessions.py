"""One GLPI session per instance, spaced calls per instance, a new session when told."""

from __future__ import annotations

from connectors.glpi import GlpiSessions, backoff_s


class Client:
    def __init__(self, name: str) -> None:
        self.name, self.closed = name, False

    def close(self) -> None:
        self.closed = True


def test_sessions_are_kept_spaced_per_instance_and_renewed_when_forgotten() -> None:
    opened: list[Client] = []
    now, slept = [10.0], list[float]()

    def client(name: str) -> Client:
        opened.append(Client(name))
        return opened[-1]

    def sleep(s: float) -> None:
        slept.append(round(s, 3))
        now[0] += s

    sessions = GlpiSessions(client, rate_per_s=4.0, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    first = sessions.paced("a")
    assert sessions.paced("a") is first and sessions.paced("b") is not first
    assert slept == [0.25]  # a's second call waited; b's first did not
    sessions.forget("a")
    assert first.closed and sessions.paced("a") is not first  # type: ignore[attr-defined]
    sessions.close()
    assert all(c.closed for c in opened) and [c.name for c in opened] == ["a", "b", "a"]


def test_backoff_doubles_from_one_second_up_to_the_cap() -> None:
    assert [backoff_s(n, 8.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
