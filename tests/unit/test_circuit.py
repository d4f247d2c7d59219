"""Circuit breakers: the state machine step by step, with explicit times."""

from __future__ import annotations

import pytest

from hookstream.policy import Admission, CircuitBreakers, CircuitState, origin_of

A = "https://a.example:443"
B = "https://b.example:443"
CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
ALLOW, PROBE, REJECT = Admission.ALLOW, Admission.PROBE, Admission.REJECT


def _fail(breakers: CircuitBreakers, origin: str, times: int, now_s: float) -> CircuitState:
    state = CLOSED
    for _ in range(times):
        state = breakers.record(origin, False, now_s)
    return state


def test_state_machine_step_by_step() -> None:
    cb = CircuitBreakers(failure_threshold=3, cooldown_s=30.0, max_cooldown_s=600.0)
    assert cb.admit(A, 0.0) is ALLOW
    assert cb.record(A, False, 1.0) is CLOSED
    assert cb.record(A, False, 2.0) is CLOSED
    assert cb.admit(A, 2.5) is ALLOW
    assert cb.record(A, False, 3.0) is OPEN          # third consecutive failure
    assert cb.state(A) is OPEN
    assert len(cb.not_closed()) == 1
    assert cb.admit(A, 3.0) is REJECT
    assert cb.admit(A, 32.9) is REJECT               # cool-down runs to 3 + 30
    assert cb.admit(A, 33.0) is PROBE                # one probe
    assert cb.state(A) is HALF_OPEN
    assert len(cb.not_closed()) == 1
    assert cb.admit(A, 33.1) is REJECT               # probe in flight
    assert cb.record(A, True, 34.0) is CLOSED        # probe succeeded
    assert cb.state(A) is CLOSED
    assert len(cb.not_closed()) == 0
    assert cb.admit(A, 34.1) is ALLOW


def test_only_one_probe_while_half_open() -> None:
    cb = CircuitBreakers(failure_threshold=1, cooldown_s=10.0)
    cb.record(A, False, 0.0)
    admissions = [cb.admit(A, t) for t in (10.0, 10.0, 11.0, 15.0, 19.9)]
    assert admissions == [PROBE, REJECT, REJECT, REJECT, REJECT]


def test_lost_probe_is_replaced_after_a_cooldown() -> None:
    # A probe whose outcome never comes back (consumer crash) must not wedge the origin.
    cb = CircuitBreakers(failure_threshold=1, cooldown_s=10.0)
    cb.record(A, False, 0.0)
    assert cb.admit(A, 10.0) is PROBE
    assert cb.admit(A, 19.9) is REJECT
    assert cb.admit(A, 20.0) is PROBE
    assert cb.admit(A, 20.0) is REJECT


def test_cooldown_growth_exact_times() -> None:
    cb = CircuitBreakers(failure_threshold=2, cooldown_s=30.0, max_cooldown_s=100.0)
    _fail(cb, A, 2, 0.0)                              # open until 30
    assert cb.admit(A, 30.0) is PROBE
    assert cb.record(A, False, 31.0) is OPEN          # cool-down 60: until 91
    assert cb.admit(A, 90.9) is REJECT
    assert cb.admit(A, 91.0) is PROBE
    assert cb.record(A, False, 92.0) is OPEN          # cool-down 120 capped to 100: until 192
    assert cb.admit(A, 191.9) is REJECT
    assert cb.admit(A, 192.0) is PROBE
    assert cb.record(A, False, 192.0) is OPEN         # still 100: until 292
    assert cb.admit(A, 291.9) is REJECT
    assert cb.admit(A, 292.0) is PROBE


def test_success_resets_the_cooldown_to_its_base() -> None:
    cb = CircuitBreakers(failure_threshold=1, cooldown_s=30.0, max_cooldown_s=600.0)
    cb.record(A, False, 0.0)                          # until 30
    assert cb.admit(A, 30.0) is PROBE
    cb.record(A, False, 30.0)                         # cool-down 60: until 90
    assert cb.admit(A, 90.0) is PROBE
    assert cb.record(A, True, 90.0) is CLOSED
    assert cb.record(A, False, 100.0) is OPEN         # back to 30: until 130
    assert cb.admit(A, 129.9) is REJECT
    assert cb.admit(A, 130.0) is PROBE


def test_fixed_cooldown_when_max_equals_base() -> None:
    cb = CircuitBreakers(failure_threshold=1, cooldown_s=30.0, max_cooldown_s=30.0)
    cb.record(A, False, 0.0)
    assert cb.admit(A, 30.0) is PROBE
    cb.record(A, False, 30.0)
    assert cb.admit(A, 60.0) is PROBE


def test_success_resets_the_failure_count() -> None:
    cb = CircuitBreakers(failure_threshold=3)
    _fail(cb, A, 2, 0.0)
    assert cb.record(A, True, 1.0) is CLOSED
    assert _fail(cb, A, 2, 2.0) is CLOSED            # counting starts again
    assert cb.record(A, False, 3.0) is OPEN


def test_success_while_open_closes() -> None:
    # A request sent before the circuit opened answers late: the origin works.
    cb = CircuitBreakers(failure_threshold=1)
    cb.record(A, False, 0.0)
    assert cb.record(A, True, 1.0) is CLOSED
    assert cb.admit(A, 1.0) is ALLOW


def test_straggler_failure_while_open_does_not_extend_cooldown() -> None:
    cb = CircuitBreakers(failure_threshold=1, cooldown_s=30.0)
    cb.record(A, False, 0.0)
    assert cb.record(A, False, 20.0) is OPEN
    assert cb.admit(A, 30.0) is PROBE


def test_origins_are_independent() -> None:
    cb = CircuitBreakers(failure_threshold=1)
    cb.record(A, False, 0.0)
    assert cb.admit(A, 1.0) is REJECT
    assert cb.admit(B, 1.0) is ALLOW
    assert cb.state(B) is CLOSED
    assert len(cb.not_closed()) == 1


def test_memory_forgets_healthy_origins() -> None:
    cb = CircuitBreakers(failure_threshold=3)
    for i in range(1000):
        origin = f"https://h{i}.example:443"
        cb.admit(origin, 0.0)
        cb.record(origin, True, 0.0)
    cb.record(A, False, 0.0)
    cb.record(A, True, 1.0)
    assert len(cb._circuits) == 0


def test_memory_bounded_for_closed_origins_with_failures() -> None:
    cb = CircuitBreakers(failure_threshold=2, max_tracked=3)
    cb.record(A, False, 0.0)
    cb.record(A, False, 0.0)                           # A open: never forgotten
    for i in range(10):
        cb.record(f"https://h{i}.example:443", False, float(i))
    assert len(cb._circuits) == 3
    assert cb.state(A) is OPEN
    # The most recently failed closed origins are the ones kept.
    assert set(cb._circuits) == {A, "https://h8.example:443", "https://h9.example:443"}
    assert cb.record("https://h9.example:443", False, 20.0) is OPEN


@pytest.mark.parametrize("kwargs", [
    {"failure_threshold": 0}, {"cooldown_s": 0.0}, {"cooldown_s": 60.0, "max_cooldown_s": 30.0},
    {"max_tracked": 0},
])
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CircuitBreakers(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "origin"), [
    ("https://example.com", "https://example.com:443"),
    ("https://example.com/hook?x=1#f", "https://example.com:443"),
    ("HTTPS://Example.COM:443/x", "https://example.com:443"),
    ("http://example.com", "http://example.com:80"),
    ("http://example.com:8080/a", "http://example.com:8080"),
    ("https://user:pass@Example.com:8443/", "https://example.com:8443"),
    ("http://[::1]:8080/x", "http://[::1]:8080"),
    ("https://[2001:DB8::1]/", "https://[2001:db8::1]:443"),
    ("  https://example.com/  ", "https://example.com:443"),
])
def test_origin_of(url: str, origin: str) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize("url", ["example.com/x", "/relative", "https://", "ftp://example.com/",
                                 "https://example.com:99999/"])
def test_origin_of_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        origin_of(url)
