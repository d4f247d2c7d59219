"""A real Apache Kafka broker on loopback, without Docker.

The broker's jars come from Maven Central through hookstream/kafka/pom.xml (version
pinned there) and are cached under the cache directory. One combined broker and
controller runs in KRaft mode; its data, logs and pid file live in the state directory.
"""

from __future__ import annotations

import base64
import fcntl
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hookstream.errors import BrokerError

POM = Path(__file__).resolve().parent / "pom.xml"
LOG4J_CONFIG = POM.parent / "log4j2.properties"
MAIN_CLASS = "kafka.Kafka"


def kafka_version(pom: Path = POM) -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom.read_text())
    if not match:
        raise BrokerError(f"no <kafka.version> in {pom}")
    return match.group(1)


@dataclass(frozen=True, slots=True)
class Secured:
    """A broker that admits only authenticated clients, as production clusters do: SASL_SSL
    with SCRAM-SHA-512 on the broker's port, mutual TLS on the port after the controller's
    (principal: the certificate's CN), and ACLs (KRaft's StandardAuthorizer, a request no
    ACL allows is denied). `admin` is the super user the broker itself connects as."""

    ca_file: Path  # PEM: the CA that signed the broker's and the clients' certificates
    keystore_file: Path  # PEM: the broker's private key (PKCS#8) and certificate chain
    users: tuple[tuple[str, str], ...]  # SCRAM-SHA-512 (name, password), made at format time
    admin: str = "admin"  # one of `users`
    # OAUTHBEARER too, on the SASL_SSL listener: JWTs checked against this JWKS (principal:
    # their `sub`, audience `kafka`); empty = SCRAM only
    oauth_jwks_url: str = ""

    @property
    def admin_password(self) -> str:
        return dict(self.users)[self.admin]


@dataclass(frozen=True, slots=True)
class Quorum:
    """A node's place in a cluster of local brokers (`LocalCluster`): its id, the
    controller port of every node (all are voters), and the id every node is formatted with."""

    node_id: int
    controller_ports: tuple[int, ...]
    cluster_id: str

    @property
    def size(self) -> int:
        return len(self.controller_ports)


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    detail: str


class LocalBroker:
    """Start, stop and inspect the local development broker."""

    def __init__(
        self,
        state_dir: Path,
        cache_dir: Path,
        port: int = 9092,
        heap_mb: int = 768,
        secured: Secured | None = None,
        quorum: Quorum | None = None,
    ):
        self.state_dir = state_dir
        self.cache_dir = cache_dir
        self.port = port
        self.heap_mb = heap_mb
        self.secured = secured
        self.quorum = quorum
        self.version = kafka_version()
        self.libs = cache_dir / f"kafka-{self.version}" / "libs"
        self.data_dir = state_dir / "kafka-data"
        self.pid_file = state_dir / "kafka.pid"
        self.log_file = state_dir / "kafka.log"
        self.config_file = state_dir / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mtls_bootstrap(self) -> str:
        """The mutual TLS listener of a secured broker."""
        return f"127.0.0.1:{self.port + 2}"

    def admin_config(self) -> dict[str, str]:
        """librdkafka properties of a super-user client of this broker."""
        config = {"bootstrap.servers": self.bootstrap}
        if self.secured:
            config.update({
                "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(self.secured.ca_file),
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": self.secured.admin,
                "sasl.password": self.secured.admin_password,
            })
        return config

    # -- status -----------------------------------------------------------------------

    def _live_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        # A reused pid that is not our broker counts as dead.
        if MAIN_CLASS.encode() not in cmdline or str(self.config_file).encode() not in cmdline:
            return None
        return pid

    def status(self) -> BrokerStatus:
        pid = self._live_pid()
        if pid is None:
            if self.pid_file.exists():
                return BrokerStatus(
                    False,
                    None,
                    self.bootstrap,
                    "not running (stale pid file: the broker died or was killed)",
                )
            return BrokerStatus(False, None, self.bootstrap, "not running")
        if _answers(self.admin_config(), timeout_s=3.0):
            return BrokerStatus(True, pid, self.bootstrap, f"running (pid {pid})")
        return BrokerStatus(
            False,
            pid,
            self.bootstrap,
            f"process {pid} alive but the broker does not answer (starting or hung)",
        )

    # -- start ------------------------------------------------------------------------

    def fetch(self) -> Path:
        """The broker's jars, fetched from Maven Central once and cached."""
        marker = self.libs / ".complete"
        if marker.exists():
            return self.libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is needed to fetch the Kafka broker; install it")
        staging = self.libs.with_name(f"libs.tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(f"fetching Kafka {self.version} failed:\n{proc.stdout[-2000:]}")
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        marker.write_text(self.version)
        return self.libs

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java 17+ is needed to run the Kafka broker; install it")
        return java

    def _listeners(self) -> list[str]:
        port, controller = self.port, f"CONTROLLER://127.0.0.1:{self.port + 1}"
        if self.secured is None:
            return [
                f"listeners=PLAINTEXT://127.0.0.1:{port},{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ]
        sec, mtls = self.secured, f"SSL://127.0.0.1:{port + 2}"
        oauth = "listener.name.sasl_ssl.oauthbearer" if sec.oauth_jwks_url else ""
        scram = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{sec.admin}" password="{sec.admin_password}";'
        )
        return [
            f"listeners=SASL_SSL://127.0.0.1:{port},{controller},{mtls}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port},{mtls}",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT,SSL:SSL",
            "inter.broker.listener.name=SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-512" + (",OAUTHBEARER" if oauth else ""),
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
            *([f"{oauth}.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer."
               "OAuthBearerLoginModule required ;",
               f"{oauth}.sasl.server.callback.handler.class=org.apache.kafka.common.security."
               "oauthbearer.OAuthBearerValidatorCallbackHandler",
               f"{oauth}.sasl.oauthbearer.jwks.endpoint.url={sec.oauth_jwks_url}",
               f"{oauth}.sasl.oauthbearer.expected.audience=kafka"] if oauth else []),
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={sec.keystore_file}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={sec.ca_file}",
            "listener.name.ssl.ssl.client.auth=required",
            "ssl.principal.mapping.rules=RULE:^CN=([^,]+).*$/$1/,DEFAULT",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            # the controller listener (loopback, PLAINTEXT) is the broker talking to itself
            f"super.users=User:{sec.admin};User:ANONYMOUS",
        ]

    def _quorum(self) -> list[str]:
        if self.quorum is None:
            return ["node.id=1", f"controller.quorum.bootstrap.servers=127.0.0.1:{self.port + 1}"]
        voters = ",".join(f"{n}@127.0.0.1:{port}"
                          for n, port in enumerate(self.quorum.controller_ports, start=1))
        return [f"node.id={self.quorum.node_id}", f"controller.quorum.voters={voters}"]

    def _write_config(self) -> None:
        # a cluster's own topics as a production cluster has them: three replicas, two in sync
        size = self.quorum.size if self.quorum else 1
        replicas, in_sync = min(3, size), 2 if size >= 3 else 1
        self.config_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    *self._quorum(),
                    *self._listeners(),
                    "controller.listener.names=CONTROLLER",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=1",
                    f"offsets.topic.replication.factor={replicas}",
                    "offsets.topic.num.partitions=10",
                    f"transaction.state.log.replication.factor={replicas}",
                    f"transaction.state.log.min.isr={in_sync}",
                    f"default.replication.factor={replicas}",
                    f"min.insync.replicas={in_sync}",
                    "transaction.state.log.num.partitions=10",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.check.interval.ms=60000",
                    "",
                ]
            )
        )

    def _format(self, libs: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = self.quorum.cluster_id if self.quorum else new_cluster_id()
        cmd = [
            self._java(),
            "-cp",
            f"{libs}/*",
            f"-Dhookstream.log.file={self.log_file}",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "kafka.tools.StorageTool",
            "format",
            *([] if self.quorum else ["--standalone"]),  # a cluster's voters are configured
            f"--cluster-id={cluster_id}",  # an id may start with "-": keep it one argument
            "-c",
            str(self.config_file),
        ]
        for name, password in self.secured.users if self.secured else ():
            cmd += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed:\n{proc.stdout}{proc.stderr}")

    def start(self, timeout_s: float = 90.0, wait: bool = True) -> BrokerStatus:
        """Start the broker unless one is running; return once it answers (or at once, for
        a cluster's node, which answers only once a quorum of its peers runs)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "broker.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two `start`s at once must not start two brokers
            current = self.status()
            if current.pid is not None:
                if not current.running:
                    _wait_until_answers(self.admin_config(), current.pid, timeout_s, self.log_file)
                return BrokerStatus(
                    True, current.pid, self.bootstrap, f"already running (pid {current.pid})"
                )
            if _port_in_use(self.port):
                raise BrokerError(
                    f"port {self.port} is in use by another process; "
                    "set HOOKSTREAM_BROKER_PORT to another port"
                )
            libs = self.fetch()
            self._write_config()
            self._format(libs)
            cmd = [
                self._java(),
                f"-Xmx{self.heap_mb}m",
                f"-Xms{min(256, self.heap_mb)}m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                # Kafka 4 fetches only the OAuth URLs it is told it may
                *([f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls="
                   f"{self.secured.oauth_jwks_url}"]
                  if self.secured and self.secured.oauth_jwks_url else []),
                f"-Dhookstream.log.file={self.log_file}",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "-cp",
                f"{libs}/*",
                MAIN_CLASS,
                str(self.config_file),
            ]
            with open(self.state_dir / "kafka.stdout", "ab") as out:
                proc = subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self.pid_file.write_text(str(proc.pid))
            if wait:
                self.wait_until_answers(timeout_s)
            return BrokerStatus(True, proc.pid, self.bootstrap, f"started (pid {proc.pid})")

    def wait_until_answers(self, timeout_s: float = 90.0) -> None:
        # the pid file's process, whether or not it is ours yet: java's launcher may exec
        # itself again, and its /proc cmdline reads empty meanwhile (_live_pid: not ours)
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError) as e:
            raise BrokerError(f"the Kafka broker is not running; see {self.log_file}") from e
        _wait_until_answers(self.admin_config(), pid, timeout_s, self.log_file)

    def kill(self) -> None:
        """SIGKILL, as a machine that dies: no controlled shutdown, no leadership handed on."""
        pid = self._live_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout_s: float = 30.0) -> BrokerStatus:
        """Stop the broker cleanly (SIGTERM), killing it only if it does not exit in time."""
        pid = self._live_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return BrokerStatus(False, None, self.bootstrap, "not running")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        detail = f"stopped (pid {pid})"
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            detail = f"killed (pid {pid}) after {timeout_s:.0f}s without exiting"
        self.pid_file.unlink(missing_ok=True)
        return BrokerStatus(False, None, self.bootstrap, detail)


class LocalCluster:
    """`count` local brokers forming one KRaft cluster on loopback, each node broker and
    controller (all voters), in `state_dir`/node-N; ports from `port` up, two a node."""

    def __init__(self, state_dir: Path, cache_dir: Path, port: int = 9092, count: int = 3,
                 heap_mb: int = 512):
        state_dir.mkdir(parents=True, exist_ok=True)
        id_file = state_dir / "cluster.id"
        if not id_file.exists():
            id_file.write_text(new_cluster_id())
        controllers = tuple(port + 2 * n + 1 for n in range(count))
        quorum = [Quorum(n + 1, controllers, id_file.read_text()) for n in range(count)]
        self.nodes = [
            LocalBroker(state_dir / f"node-{q.node_id}", cache_dir, port + 2 * n, heap_mb,
                        quorum=q)
            for n, q in enumerate(quorum)
        ]
        self.version = self.nodes[0].version

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, timeout_s: float = 120.0) -> BrokerStatus:
        started = [node.start(timeout_s, wait=False) for node in self.nodes]
        for node in self.nodes:
            node.wait_until_answers(timeout_s)
        pids = ", ".join(str(s.pid) for s in started)
        return BrokerStatus(True, started[0].pid, self.bootstrap,
                            f"{len(self.nodes)} brokers running (pids {pids})")

    def status(self) -> BrokerStatus:
        each = [node.status() for node in self.nodes]
        running = sum(s.running for s in each)
        detail = "; ".join(f"node {n}: {s.detail}" for n, s in enumerate(each, start=1))
        return BrokerStatus(running == len(each), each[0].pid, self.bootstrap, detail)

    def stop(self, timeout_s: float = 30.0) -> BrokerStatus:
        """Every node at once: the last one stopped alone would wait for a quorum gone."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            each = list(pool.map(lambda node: node.stop(timeout_s), self.nodes))
        return BrokerStatus(False, None, self.bootstrap, "; ".join(s.detail for s in each))


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _answers(config: dict[str, str], timeout_s: float) -> bool:
    """True when a Kafka broker answers a metadata request (`config`: an admin client's)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**config, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout_s)
        return True
    except Exception:
        return False


def _wait_until_answers(
    config: dict[str, str], pid: int, timeout_s: float, log_file: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    port = int(config["bootstrap.servers"].rsplit(":", 1)[1])
    while time.monotonic() < deadline:
        if not _alive(pid):
            tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
            raise BrokerError(f"the Kafka broker exited during start; last log lines:\n{tail}")
        if _port_in_use(port) and _answers(config, 2.0):
            return
        time.sleep(0.3)
    raise BrokerError(f"the Kafka broker did not answer within {timeout_s:.0f}s; see {log_file}")


def free_port_pair(count: int = 2) -> int:
    """The first of `count` free adjacent ports (broker, controller, and a secured broker's
    mutual TLS listener) below the ephemeral range, where an outgoing connection cannot
    take one of them between this check and the bind."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        port = random.randrange(20_000, min(low, 32_000) - count)
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise BrokerError("no free ports for a local broker")
