"""One error hierarchy, split by how the caller must react.

    HookstreamError
    ├── ConfigError                 settings are invalid: fail fast at start
    ├── UsageError                  a command-line argument is invalid (exit code 2)
    ├── BrokerError                 the local Kafka broker could not be fetched or started
    ├── TransientError              try again later
    │   ├── OAuthFailed             the OAuth token endpoint failed (charged to it, not the target)
    │   └── KafkaFailed             a Kafka call failed (librdkafka's error classes, below)
    │       ├── KafkaRetriable      the same call may succeed if made again
    │       ├── KafkaAbortable      abort the transaction, rewind to the committed offsets, go on
    │       └── KafkaFatal          the client is unusable (fenced, or a call that hung): rebuild
    └── PermanentError              retrying cannot help
        ├── DecodeError             malformed record bytes (names topic, partition, offset)
        ├── InvalidDefinition       a webhook definition failed validation (lists every error)
        ├── InvalidAlert            a monitoring tool's body `run alerts` cannot read (its 400)
        ├── InvalidCriteria         a filter that cannot be evaluated
        ├── InvalidTemplate         a template that does not compile
        ├── RenderError             a template that failed while rendering
        └── BlockedDestination      SSRF guard refused the target address

Foreign exceptions are translated once, at the adapter, with `raise X(...) from e`.
"""

from __future__ import annotations


class HookstreamError(Exception):
    """Base of every error hookstream raises on purpose."""


class ConfigError(HookstreamError):
    """Settings are missing or invalid."""


class UsageError(HookstreamError):
    """A command-line argument is invalid; the message names it."""


class BrokerError(HookstreamError):
    """The local Kafka broker could not be fetched, formatted or started."""


class TransientError(HookstreamError):
    """A failure that may pass: the caller retries later."""


class OAuthFailed(TransientError):
    """The OAuth token endpoint refused or failed: the delivery waits, the target is not blamed."""


class KafkaFailed(TransientError):
    """A Kafka call failed; `code` is librdkafka's error name (e.g. `_TRANSPORT`)."""

    def __init__(self, message: str, code: str = ""):
        self.code = code
        super().__init__(message)


class KafkaRetriable(KafkaFailed):
    """librdkafka says the call is retriable: make the same call again."""


class KafkaAbortable(KafkaFailed):
    """The transaction must be aborted (txn_requires_abort); the clients stay usable."""


class KafkaFatal(KafkaFailed):
    """The client is unusable (fatal error, e.g. fenced): close it and build new clients."""


class PermanentError(HookstreamError):
    """A failure that retrying cannot fix."""


class InvalidAlert(PermanentError):
    """An alert notification's body is not the source's format; the message says why."""


class DecodeError(PermanentError):
    """Bytes on a topic could not be decoded into the expected record."""

    def __init__(self, reason: str, topic: str = "", partition: int = -1, offset: int = -1):
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        where = f" at {topic}[{partition}]@{offset}" if topic else ""
        super().__init__(f"undecodable record{where}: {reason}")

    def at(self, topic: str, partition: int, offset: int) -> DecodeError:
        """The same error, located on a topic."""
        return DecodeError(self.reason, topic, partition, offset)


class InvalidDefinition(PermanentError):
    """A webhook definition failed validation; `errors` lists every problem."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{source}: {len(self.errors)} error(s)\n{lines}")


class InvalidCriteria(PermanentError):
    """A filter names an unknown field or searchtype, or has a malformed shape."""


class InvalidTemplate(PermanentError):
    """A template does not compile, or uses something outside the allow-list."""


class RenderError(PermanentError):
    """A template raised, ran too long or produced too much while rendering."""


class BlockedDestination(PermanentError):
    """The SSRF guard refused the address the request would connect to."""

# An HTTP attempt's result (timeout, refused connection, CRA challenge failed) is not an
# exception: it is an observed outcome, classified by hookstream.policy.retry.
