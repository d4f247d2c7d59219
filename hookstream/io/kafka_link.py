"""The process's Kafka link as an operator reads it in the log during an outage.

Every client hookstream builds reports here (librdkafka's `error_cb`, `logger` and
`stats_cb`). Without this, librdkafka logs a connection failure per client about every
50 ms; with it, a process says once that Kafka became unreachable and why, a summary a
minute while it lasts, and once that it is back with how long it was away:

    Kafka unreachable: 127.0.0.1:9092: Connection refused
    Kafka still unreachable after 1m0s: 1,204 connection errors; last: ... Connection refused
    Kafka reachable again after 1m18s

A single broker of a cluster going away is the same three lines about that broker, unless
the whole cluster is away. /readyz is not ready while Kafka is unreachable
(`KafkaLink.ok`). Recovery is read from librdkafka's statistics (a broker in state UP),
the one place it tells that a connection is established.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError

log = logging.getLogger("hookstream.kafka")

STATS_INTERVAL_MS = 5000  # how soon a recovery is noticed
SUMMARY_EVERY_S = 60.0
WHOLE = "Kafka"  # the subject of an outage of every broker
_AFTER_STATE = re.compile(r"\s*\(after \d+ms in state \w+\)")


@dataclass
class Outage:
    since: float
    cause: str
    errors: int = 1
    said_at: float | None = None  # when its first line was logged (None: not yet)


class KafkaLink:
    """Outages by subject (`WHOLE` or one broker's host:port), from the clients' callbacks,
    which librdkafka makes from whichever thread polls a client: hence the lock."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, summary_every_s: float = SUMMARY_EVERY_S,
        logger: logging.Logger = log,
    ):
        self._clock, self._log = clock, logger
        self._summary_every_s = summary_every_s
        self._lock = threading.Lock()
        self._outages: dict[str, Outage] = {}
        self.principal = ""  # who the clients connect as, for the errors that name it
        self.ca_file = ""  # the CA the clients trust, to tell a TLS failure's cause
        self._lines = Throttled(logger, summary_every_s, clock)

    def callbacks(self) -> dict[str, Any]:
        """The librdkafka properties that route a client's reports here."""
        return {
            "error_cb": self.on_error,
            "logger": self,
            "log_level": 3,  # errors only: librdkafka logs transient retries as warnings
            "stats_cb": self.on_stats,
            "statistics.interval.ms": STATS_INTERVAL_MS,
            # brokers close idle connections (connections.max.idle.ms): not an outage
            "log.connection.close": False,
        }

    def connecting_as(self, principal: str, ca_file: str = "") -> None:
        self.principal, self.ca_file = principal, ca_file

    def forget(self) -> None:
        """Drop every outage: for a process that moves to other brokers (the tests)."""
        with self._lock:
            self._outages.clear()

    def ok(self) -> bool:
        """False while no broker can be reached (or none accepts the credentials)."""
        with self._lock:
            return WHOLE not in self._outages

    def cause(self) -> str | None:
        """Why Kafka is unreachable, for an error message; None when it is not."""
        with self._lock:
            outage = self._outages.get(WHOLE)
            return outage.cause if outage else None

    # -- librdkafka's callbacks ---------------------------------------------------------

    def on_error(self, err: KafkaError) -> None:
        code, text = err.code(), _AFTER_STATE.sub("", err.str())
        if code in (KafkaError._TRANSPORT, KafkaError._RESOLVE):
            # "127.0.0.1:9092/1: Connect to ... failed: ...", or the consumer group's own
            # connection to the same broker: "GroupCoordinator: 127.0.0.1:9092: ..."
            broker, _, cause = text.removeprefix("GroupCoordinator: ").partition(": ")
            if "Disconnected" in cause and "Connect" not in cause:
                return  # a closed connection: the reconnect's failure, if any, is the news
            self._fault(_address(broker), f"{_address(broker)}: {cause}", whole=False)
        elif code == KafkaError._ALL_BROKERS_DOWN:
            with self._lock:
                last = max(self._outages.values(), key=lambda o: o.since, default=None)
            self._fault(WHOLE, last.cause if last else text, whole=True)
        elif code == KafkaError._AUTHENTICATION:
            self._fault(WHOLE, self._authentication(text), whole=True)
        elif code == KafkaError._SSL:
            with self._lock:
                known = self._outages.get(WHOLE)
            if known is None or known.errors < 2:  # diagnose once, then count
                self._fault(WHOLE, _tls(text, self.ca_file), whole=True)
            else:
                self._fault(WHOLE, known.cause, whole=True)
        else:
            self._log.warning("Kafka: %s (%s)", text, err.name())

    def on_stats(self, stats_json: str) -> None:
        self.seen(json.loads(stats_json))

    def seen(self, stats: Mapping[str, Any]) -> None:
        """A client's statistics, parsed (for a stats_cb that reads them too)."""
        # when each broker's connection came up, on the monotonic clock librdkafka's `ts`
        # shares with time.monotonic: statistics made before an outage began, served after
        # it, must not end it
        taken_s = stats.get("ts", 0) / 1e6
        up = {_address(name): taken_s - b.get("stateage", 0) / 1e6
              for name, b in stats.get("brokers", {}).items() if b.get("state") == "UP"}
        now = self._clock()
        with self._lock:
            for subject in [s for s, o in self._outages.items()
                            if up.get(s, -1.0) >= o.since
                            or (s == WHOLE and any(t >= o.since for t in up.values()))]:
                outage = self._outages.pop(subject)
                if outage.said_at is not None:
                    self._log.warning("%s reachable again after %s", _subject(subject),
                                _duration(now - outage.since))
            self._say(now)

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """librdkafka's log lines (`facility [client] message`); connection failures come
        through `on_error` instead, and a line repeated by every rebuilt client is said once
        a minute."""
        facility, message = (args[0], args[2]) if len(args) == 3 else ("", fmt % args)
        if facility not in ("FAIL", "ERROR"):
            self._lines.warning(f"librdkafka {facility}: {message}")

    # -- outages ------------------------------------------------------------------------

    def _fault(self, subject: str, cause: str, *, whole: bool) -> None:
        now = self._clock()
        with self._lock:
            outage = self._outages.get(subject)
            if outage is None:
                self._outages[subject] = Outage(now, cause)
            else:
                outage.errors += 1
                outage.cause = cause
            if whole:  # said at once; a single broker waits a statistics round (`_say`)
                self._say(now)

    def _say(self, now: float) -> None:
        """Log each outage's first line, then a summary a minute. A broker's own outage is
        not told while the whole of Kafka is away: that line already says it."""
        whole = WHOLE in self._outages
        for subject, outage in self._outages.items():
            if whole and subject != WHOLE:
                continue
            if outage.said_at is None:
                self._log.error("%s unreachable: %s", _subject(subject), outage.cause)
                outage.said_at = now
            elif now - outage.said_at >= self._summary_every_s:
                self._log.error("%s still unreachable after %s: %d connection errors; last: %s",
                          _subject(subject), _duration(now - outage.since), outage.errors,
                          outage.cause)
                outage.said_at = now

    def _authentication(self, text: str) -> str:
        who = f" of {self.principal}" if self.principal else ""
        return f"the brokers refused the credentials{who}: {text.split(': ', 1)[-1]}"


def _tls(text: str, ca_file: str) -> str:
    """What an operator must fix, from librdkafka's TLS handshake error."""
    address, _, detail = text.partition(": ")
    address = address.split("://")[-1].split("/")[0]
    lowered = detail.lower()
    if "certificate verify failed" in lowered:
        # librdkafka says the same of an unknown CA and of a certificate for another host
        if _chain_verifies(address, ca_file):
            return (f"the TLS certificate of {address} is not issued for that host name "
                    "(check bootstrap_servers, or the broker's certificate)")
        return (f"the TLS certificate of {address} is not signed by a trusted CA "
                "(check kafka_ssl_ca_location)")
    if "wrong version number" in lowered or "packet length too long" in lowered:
        return f"{address} does not speak TLS (check kafka_security_protocol)"
    return f"TLS with {address} failed: {detail}"


def _chain_verifies(address: str, ca_file: str, timeout_s: float = 3.0) -> bool:
    """True when the broker's certificate chain verifies against the CA (the host name
    aside): then the host name is what failed. Asked once an outage."""
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context(cafile=ca_file or None)
    context.check_hostname = False
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout_s) as sock, \
                context.wrap_socket(sock):
            return True
    except (OSError, ValueError):  # ssl.SSLError is an OSError
        return False


def _address(name: str) -> str:
    """host:port of librdkafka's broker name (`sasl_ssl://host:port/1`, `host:port/bootstrap`)."""
    return name.split("://")[-1].split("/")[0]


def _subject(subject: str) -> str:
    return subject if subject == WHOLE else f"Kafka broker {subject}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{seconds:.1f}s"


class Throttled:
    """A warning said once, then at most once a minute with how often it came meanwhile: a
    loop that fails the same way (a missing ACL) must not flood the log."""

    def __init__(self, logger: logging.Logger, every_s: float = SUMMARY_EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self._log, self._every_s, self._clock = logger, every_s, clock
        self._said: dict[str, tuple[float, int]] = {}  # message: (said at, repeats since)

    def warning(self, message: str) -> None:
        now = self._clock()
        said_at, repeats = self._said.get(message, (None, 0))
        if said_at is None or now - said_at >= self._every_s:
            again = f" (again {repeats + 1} times in {_duration(now - said_at)})" if said_at else ""
            self._log.warning("%s%s", message, again)
            self._said[message] = (now, 0)
        else:
            self._said[message] = (said_at, repeats + 1)


LINK = KafkaLink()  # one per process: every client of the process reports to it
