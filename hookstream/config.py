"""One typed settings object: defaults, then a YAML file, then HOOKSTREAM_* variables.

Every field maps one-to-one to an environment variable (`HOOKSTREAM_` + upper-cased
name) and to a Helm value. `load_settings` validates and fails fast with ConfigError.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import socket
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

import yaml

from hookstream.errors import ConfigError

ENV_PREFIX = "HOOKSTREAM_"
_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,249}")  # what Kafka takes as a group.instance.id


@dataclass(frozen=True, slots=True)
class Settings:
    # Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    schema_registry_url: str = ""  # no credentials in it: they go in the settings below
    schema_registry_username: str = ""  # HTTP basic auth, with the password
    schema_registry_password: str = field(default="", repr=False)
    schema_registry_token: str = field(default="", repr=False)  # a bearer token instead
    schema_registry_ca_location: str = ""  # PEM file of the registry's CA; empty = the system's
    # false: only schemas registered ahead (`hookstream schemas register`) are used
    schema_registry_auto_register: bool = True
    partitions: int = 6
    table_partitions: int = 1  # the compacted webhooks and entities topics
    # replicas of each topic: 0 = as many as the cluster has brokers, up to 3 (production:
    # 3); min.insync.replicas: 0 = 2 with three replicas or more, else 1
    replication_factor: int = 0
    min_insync_replicas: int = 0
    # Kafka connection security (README "Kafka security"). A secret setting may instead be
    # read from a file: HOOKSTREAM_<NAME>_FILE (or `<name>_file:` in the settings file)
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    kafka_ssl_ca_location: str = ""  # PEM file of the brokers' CA; empty = the system's store
    kafka_ssl_certificate_location: str = ""  # the client certificate (mTLS), PEM
    kafka_ssl_key_location: str = ""  # its private key, PEM
    kafka_ssl_key_password: str = field(default="", repr=False)
    kafka_ssl_verify_hostname: bool = True  # the broker certificate must name the host
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"  # PLAIN, SCRAM-SHA-256/512 or OAUTHBEARER
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    # OAUTHBEARER: OIDC client credentials, the token fetched and renewed by librdkafka
    kafka_oauth_token_url: str = ""
    kafka_oauth_client_id: str = ""
    kafka_oauth_client_secret: str = field(default="", repr=False)
    kafka_oauth_scope: str = ""
    # any other librdkafka property, `name=value` (e.g. socket.keepalive.enable=true);
    # checked at start-up: an unknown name or a property hookstream sets itself is refused
    kafka_config: tuple[str, ...] = ()
    # the bound on every blocking Kafka call of a transactional loop (commit, send offsets,
    # abort, init): a call still blocked after it (librdkafka #5456) is abandoned with its
    # client, and new clients are built
    kafka_call_timeout_s: float = 10.0
    # fewer, larger requests to the brokers (README "Kafka request batching"): producers'
    # compression, and how long the broker may hold a fetch of the processor's and
    # delivery's consumers while less than kafka_fetch_min_bytes waits for them
    kafka_compression: str = "lz4"  # none, gzip, snappy, lz4 or zstd
    kafka_fetch_min_bytes: int = 65_536
    kafka_fetch_wait_ms: int = 20
    # static group membership (KIP-345) of delivery and the processor: a name this process
    # alone holds (the Helm chart's StatefulSets give each pod its own name). A process
    # restarted under the same name takes its partitions back at once; empty = dynamic
    # membership, where a killed member's partitions wait its session timeout
    group_instance_id: str = ""
    # the local development broker
    state_dir: str = "~/.local/state/hookstream"
    cache_dir: str = "~/.cache/hookstream"
    broker_port: int = 9092
    broker_heap_mb: int = 768
    # webhook secrets are encrypted with this Fernet key; empty = a key file in state_dir
    secret_key: str = field(default="", repr=False)
    # processor
    processor_batch_size: int = 1000
    processor_batch_ms: int = 50
    # copies of one event (same event id: a GLPI retry that reached another ingest replica,
    # a poller page read twice) are skipped when the partition's previous copy is at most
    # this old and this many records back (per input partition; README "Guarantees")
    processor_dedup_window_s: float = 3900.0
    processor_dedup_entries: int = 100_000
    render_timeout_s: float = 0.5
    max_body_bytes: int = 1_048_576
    # delivery
    retry_tiers: tuple[str, ...] = ("10s", "1m", "10m", "1h", "6h")
    max_in_flight: int = 512
    max_in_flight_per_origin: int = 64
    allowed_networks: tuple[str, ...] = ()
    circuit_failure_threshold: int = 5
    circuit_cooldown_s: float = 30.0
    # a webhook whose target failed every attempt this long is disabled (0 = never; Svix: 5 days)
    autodisable_after_s: float = 432_000.0
    cra_cache_s: float = 300.0
    # a CRA challenge failing for a delivery older than this sends it to the DLQ (0 = never)
    cra_challenge_max_age_s: float = 86_400.0
    # deliveries an origin may hold in memory, waiting for its adaptive in-flight limit,
    # before the partitions feeding it are paused
    max_queued_per_origin: int = 1000
    # ordering: per_item webhooks: deliveries held in memory behind the earlier one of their
    # item (and heads waiting for their retry) before the partitions adding to them pause
    ordering_max_held: int = 10_000
    ordering_max_held_bytes: int = 67_108_864
    response_body_cap_bytes: int = 65_536
    # ingest: GLPI 11 native webhooks in (`hookstream run ingest`)
    ingest_host: str = "0.0.0.0"
    ingest_port: int = 8480
    ingest_max_body_bytes: int = 1_048_576  # larger bodies get 413
    # GLPI gives up on a webhook after 5 s in all: answer 503 well before, so it retries
    ingest_produce_timeout_s: float = 3.0
    # memory of accepted requests (GLPI retries, replays): entries, and how long each is
    # kept; keep it at least the instances' timestamp tolerance plus 300 s of clock skew
    ingest_dedup_entries: int = 200_000
    ingest_dedup_ttl_s: float = 3900.0
    # the ingest endpoint's base URL as GLPI reaches it (`hookstream glpi provision`)
    ingest_url: str = ""
    # worker processes sharing ingest_port (SO_REUSEPORT), each with its own Kafka producer;
    # 0 = the CPUs this process may use (its affinity, bounded by a cgroup CPU limit)
    ingest_workers: int = 0
    # alerts: Alertmanager, Grafana and Zabbix notifications in (`hookstream run alerts`)
    alerts_host: str = "0.0.0.0"
    alerts_port: int = 8490
    alerts_max_body_bytes: int = 1_048_576  # larger bodies get 413
    # answer 503 well within the senders' own timeouts (Grafana's is 30 s), so they retry
    alerts_produce_timeout_s: float = 5.0
    # poller (`hookstream run poller`): GLPI instances without native webhooks, via the API
    poller_instances: tuple[str, ...] = ()  # empty = every published instance with an api_url
    poller_itemtypes: tuple[str, ...] = ("Ticket", "Change", "Problem", "Computer")
    poller_interval_s: float = 30.0  # between polls of an itemtype that is caught up
    poller_intervals: tuple[str, ...] = ()  # per itemtype, e.g. "Computer=300"
    poller_page_size: int = 50  # items read per API call (search and getMultipleItems)
    # GLPI's API gives local times without an offset: the instances' timezone (IANA name)
    poller_timezone: str = "UTC"
    poller_team: bool = True  # read ITIL actors for item.team (3 calls per changed item)
    # changes made only by the integration's own GLPI user (write-back followups, tickets
    # hookstream opens) are not produced: no webhook fires on hookstream's own writes
    poller_skip_own_changes: bool = True
    poller_names_ttl_s: float = 300.0  # how long a dropdown, user or group name is reused
    poller_backoff_max_s: float = 300.0  # longest wait after repeated errors
    # history write-back (`hookstream run writeback`): GLPI API writes per second per instance
    writeback_rate_per_s: float = 5.0
    # alerts into tickets (`hookstream run ticketer`): GLPI API calls per second per instance,
    # and the longest wait between tries of a GLPI that cannot be reached
    ticketer_rate_per_s: float = 5.0
    ticketer_backoff_max_s: float = 60.0
    # log store (`hookstream run logstore`): empty = SQLite in state_dir (logstore.db);
    # production: postgresql://USER:PASSWORD@HOST:PORT/DB
    logstore_url: str = field(default="", repr=False)
    logstore_retention_days: float = 30.0  # deliveries older than this are deleted (GLPI: 30)
    logstore_body_max_bytes: int = 65_536  # longer bodies are stored truncated, with size+hash
    logstore_batch_size: int = 2000
    # admin API (`hookstream run admin`); tokens: NAME:SHA256:INSTANCES:ro|rw, INSTANCES
    # `*` or names joined by `|` (`hookstream admin token` prints one)
    admin_host: str = "127.0.0.1"
    admin_port: int = 8470
    admin_tokens: tuple[str, ...] = field(default=(), repr=False)
    # the reverse proxies (an Ingress controller) whose X-Forwarded-Proto and
    # X-Forwarded-For the admin API and console believe: addresses or networks
    # (10.0.0.0/8), or "*" for any peer (only where nothing else can reach admin_port).
    # Behind a TLS-terminating proxy left out here, the console refuses logins.
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    # operations
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"  # where the operations port listens (tests: 127.0.0.1)
    # webhook ids (and target origins) with a label of their own in metrics; the rest
    # share the label `_other`, so Prometheus series stay bounded (docs/metrics.md)
    metrics_webhook_cap: int = 500
    metrics_interval_s: float = 5.0  # how often lag, backlog and DLQ gauges refresh
    log_level: str = "INFO"

    def topic(self, name: str) -> str:
        """A topic name with the configured prefix."""
        return f"{self.topic_prefix}{name}"

    @property
    def retry_tiers_s(self) -> tuple[int, ...]:
        """The retry tiers in seconds: the one place their spelling (10s, 1m) is parsed."""
        from hookstream.policy.retry import parse_delay  # a leaf module: policy needs config

        return tuple(parse_delay(t) for t in self.retry_tiers)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser()

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES = get_type_hints(Settings)
# settings whose values are secrets: never printed, in Helm's Secret, readable from files
SECRETS = frozenset(f.name for f in dataclasses.fields(Settings) if not f.repr)
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
KAFKA_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
REDACTED = "<redacted>"


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """Every setting with its value, secrets replaced by a mark (set) or "" (unset)."""
    return {
        name: (REDACTED if getattr(settings, name) else "") if name in SECRETS
        else getattr(settings, name)
        for name in _FIELDS
    }


def _read_secret_file(name: str, path: str) -> str:
    try:
        # a mounted Secret or `echo` leaves a final newline that is no part of the value
        return Path(path).read_text().rstrip("\r\n")
    except OSError as e:
        raise ConfigError(f"setting {name}: cannot read {path}: {e.strerror}") from e


def _coerce(name: str, raw: Any) -> Any:
    kind = _TYPES[name]
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"not a boolean: {raw!r}")
            return text in ("1", "true", "yes", "on")
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError(f"not an integer: {raw!r}")
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is str:
            return str(raw)
        if isinstance(kind, types.GenericAlias) and kind.__origin__ is tuple:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(i).strip() for i in items if str(i).strip())
    except (TypeError, ValueError) as e:
        raise ConfigError(f"setting {name}: {e}") from e
    raise ConfigError(f"setting {name}: unsupported type {kind}")  # pragma: no cover


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    check_dns: bool = True,
    **overrides: Any,
) -> Settings:
    """Defaults, then the YAML file at `path` (or $HOOKSTREAM_CONFIG), then the environment,
    then explicit overrides; validated."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    problems: list[str] = []  # every coercion error, not only the first

    def take(name: str, raw: Any) -> None:
        try:
            values[name] = _coerce(name, raw)
        except ConfigError as e:
            problems.append(str(e))

    path = path or env.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read settings file {path}: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"settings file {path} must hold a mapping")
        files = {f"{name}_file" for name in SECRETS}
        unknown = sorted(set(loaded) - set(_FIELDS) - files)
        if unknown:
            problems.append(f"settings file {path}: unknown setting(s) {', '.join(unknown)}")
        for name, raw in loaded.items():
            if name in _FIELDS:
                take(name, raw)
            elif name in files and raw:
                take(name[: -len("_file")], _read_secret_file(name[: -len("_file")], str(raw)))
    for name in _FIELDS:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            take(name, raw)
        file_path = env.get(f"{ENV_PREFIX}{name.upper()}_FILE") if name in SECRETS else None
        if file_path:
            if raw is not None:
                problems.append(f"setting {name}: set both {ENV_PREFIX}{name.upper()} and _FILE")
            else:
                try:
                    take(name, _read_secret_file(name, file_path))
                except ConfigError as e:
                    problems.append(str(e))
    for name, raw in overrides.items():
        if raw is not None:
            take(name, raw)
    if problems:
        raise ConfigError("invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))
    settings = Settings(**values)
    validate(settings, check_dns=check_dns)
    return settings


def validate(settings: Settings, check_dns: bool = True) -> None:
    """Raise ConfigError listing every problem."""
    errors: list[str] = []
    servers = [s.strip() for s in settings.bootstrap_servers.split(",") if s.strip()]
    if not servers:
        errors.append("bootstrap_servers is empty")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not port.isdigit():
            errors.append(f"bootstrap server {server!r} must be host:port")
            continue
        if check_dns:
            try:
                socket.getaddrinfo(host.strip("[]"), int(port))
            except (socket.gaierror, UnicodeError):
                errors.append(f"bootstrap host {host!r} does not resolve")
    for name in (
        "partitions",
        "table_partitions",
        "processor_batch_size",
        "processor_dedup_entries",
        "max_in_flight",
        "max_in_flight_per_origin",
        "max_queued_per_origin",
        "ordering_max_held",
        "ordering_max_held_bytes",
        "circuit_failure_threshold",
        "ingest_dedup_entries",
        "ingest_max_body_bytes",
        "alerts_max_body_bytes",
        "poller_page_size",
    ):
        if getattr(settings, name) < 1:
            errors.append(f"{name} must be at least 1")
    if settings.kafka_compression not in KAFKA_COMPRESSIONS:
        errors.append(f"kafka_compression {settings.kafka_compression!r} is not one of "
                      + ", ".join(KAFKA_COMPRESSIONS))
    if settings.kafka_fetch_min_bytes < 1 or not 0 <= settings.kafka_fetch_wait_ms <= 1000:
        errors.append("kafka_fetch_min_bytes must be at least 1 and kafka_fetch_wait_ms "
                      "between 0 and 1000")
    if settings.processor_dedup_window_s <= 0:
        errors.append("processor_dedup_window_s must be more than 0")
    if settings.replication_factor < 0 or settings.min_insync_replicas < 0:
        errors.append("replication_factor and min_insync_replicas must be 0 (automatic) or more")
    elif settings.replication_factor and settings.min_insync_replicas > settings.replication_factor:
        errors.append("min_insync_replicas cannot exceed replication_factor")
    if settings.ticketer_rate_per_s <= 0 or settings.ticketer_backoff_max_s < 1:
        errors.append("ticketer_rate_per_s must be more than 0 and ticketer_backoff_max_s at "
                      "least 1")
    if settings.autodisable_after_s < 0:
        errors.append("autodisable_after_s must be 0 (never) or more")
    for name in ("ingest_port", "alerts_port"):
        if not 0 < getattr(settings, name) < 65536:
            errors.append(f"{name} must be between 1 and 65535")
    if settings.ingest_workers < 0:
        errors.append("ingest_workers must be 0 (the CPU count) or more")
    if settings.alerts_produce_timeout_s <= 0:
        errors.append("alerts_produce_timeout_s must be more than 0")
    if not 0 < settings.broker_port < 65535:
        errors.append("broker_port must be between 1 and 65534")
    if not settings.retry_tiers:
        errors.append("retry_tiers must list at least one delay")
    from hookstream.policy.retry import parse_delay  # the retry module owns the delay spelling

    for tier in settings.retry_tiers:
        try:
            parse_delay(tier)
        except ValueError:
            errors.append(f"retry tier {tier!r} is not a delay such as 10s, 1m, 1h")
    from hookstream.policy.ssrf import parse_networks

    try:
        parse_networks(settings.allowed_networks)
    except ValueError as e:
        errors.append(f"allowed_networks: {e}")
    from hookstream.records.cursor import poller_problems  # pure: zone and intervals

    errors += poller_problems(settings.poller_timezone, settings.poller_intervals)
    errors += _trusted_proxies_problems(settings.trusted_proxies)
    instance_id = settings.group_instance_id
    if instance_id and (not _INSTANCE_ID.fullmatch(instance_id) or instance_id in (".", "..")):
        errors.append(f"group_instance_id {instance_id!r} must be 1 to 249 "
                      "letters, digits, '.', '_' or '-' (a pod name is)")
    errors += _schema_registry_problems(settings)
    errors += _kafka_security_problems(settings)
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        errors.append(f"log_level {settings.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    if errors:
        raise ConfigError("invalid settings:\n" + "\n".join(f"  - {e}" for e in errors))


def _trusted_proxies_problems(proxies: tuple[str, ...]) -> list[str]:
    """Each entry an address or a network; "*" alone. (The server would take anything else
    as a literal matching no peer, and silently trust no proxy.)"""
    if "*" in proxies:
        return [] if proxies == ("*",) else ['trusted_proxies: "*" stands alone']
    errors = []
    for entry in proxies:
        try:
            ipaddress.ip_network(entry)  # an address is a network of one
        except ValueError:
            errors.append(f"trusted_proxies: {entry!r} is not an IP address or network "
                          "(host bits set?)")
    return errors


def _kafka_security_problems(settings: Settings) -> list[str]:
    """What cannot work in the Kafka security settings (librdkafka checks the rest when the
    first client is built: hookstream.io.kafka.check_client_config)."""
    errors = []
    protocol, mechanism = settings.kafka_security_protocol, settings.kafka_sasl_mechanism
    if protocol not in SECURITY_PROTOCOLS:
        errors.append(f"kafka_security_protocol {protocol!r} is not one of "
                      + ", ".join(SECURITY_PROTOCOLS))
    if protocol.startswith("SASL"):
        if mechanism not in SASL_MECHANISMS:
            errors.append(f"kafka_sasl_mechanism {mechanism!r} is not one of "
                          + ", ".join(SASL_MECHANISMS))
        elif mechanism == "OAUTHBEARER":
            for name in ("kafka_oauth_token_url", "kafka_oauth_client_id",
                         "kafka_oauth_client_secret"):
                if not getattr(settings, name):
                    errors.append(f"{name} is needed with kafka_sasl_mechanism OAUTHBEARER")
        elif not (settings.kafka_sasl_username and settings.kafka_sasl_password):
            errors.append(f"kafka_sasl_username and kafka_sasl_password are needed with "
                          f"kafka_sasl_mechanism {mechanism}")
    if bool(settings.kafka_ssl_certificate_location) != bool(settings.kafka_ssl_key_location):
        errors.append("kafka_ssl_certificate_location and kafka_ssl_key_location go together")
    for name in ("kafka_ssl_ca_location", "kafka_ssl_certificate_location",
                 "kafka_ssl_key_location"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            errors.append(f"{name}: no file {path}")
    for entry in settings.kafka_config:
        if "=" not in entry:
            errors.append(f"kafka_config entry {entry!r} must be name=value")
    return errors


def _schema_registry_problems(settings: Settings) -> list[str]:
    """What cannot work in the schema registry settings. A URL that carries credentials is
    refused (a URL ends up in ConfigMaps and logs); the message never repeats the URL."""
    url = settings.schema_registry_url
    if not url:
        return []
    errors = []
    try:
        parts = urlsplit(url)
        has_credentials = parts.username is not None or parts.password is not None
    except ValueError:
        return ["schema_registry_url is not a URL"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append("schema_registry_url must be an http:// or https:// URL")
    if has_credentials:
        errors.append("schema_registry_url must not carry credentials (user:password@): set "
                      "schema_registry_username and schema_registry_password (or "
                      f"{ENV_PREFIX}SCHEMA_REGISTRY_PASSWORD_FILE), or schema_registry_token")
    if bool(settings.schema_registry_username) != bool(settings.schema_registry_password):
        errors.append("schema_registry_username and schema_registry_password go together")
    if settings.schema_registry_password and settings.schema_registry_token:
        errors.append("set schema_registry_password (basic) or schema_registry_token (bearer), "
                      "not both")
    ca = settings.schema_registry_ca_location
    if ca and not Path(ca).is_file():
        errors.append(f"schema_registry_ca_location: no file {ca}")
    return errors
