"""A secured local broker for the tests: certificates made with openssl, SCRAM users made by
Kafka's own storage tool, ACLs (deny unless allowed) made from hookstream's ACL table."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from hookstream.config import Settings, load_settings
from hookstream.control.acls import COMPONENTS, acls
from hookstream.devbroker import LocalBroker, Secured, free_port_pair
from tests.oidc_server import OidcServer

MTLS_CLIENT = "mtls-client"  # the CN of the mutual TLS client certificate


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
             "-days", "2", "-subj", f"/CN={name}")
    return cert, key


def issue(folder: Path, ca: tuple[Path, Path], cn: str, san: str = "") -> tuple[Path, Path]:
    """A certificate for `cn` signed by `ca`: (certificate, PKCS#8 key)."""
    cert, key, csr = folder / f"{cn}.crt", folder / f"{cn}.key", folder / f"{cn}.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
             "-subj", f"/CN={cn}")
    extensions = folder / f"{cn}.ext"
    extensions.write_text(f"subjectAltName={san}\n" if san else "")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", extensions)
    return cert, key


@dataclass(frozen=True)
class SecureKafka:
    broker: LocalBroker
    ca_file: Path
    passwords: dict[str, str]  # SCRAM user: password
    folder: Path  # certificates
    oidc: OidcServer  # the token endpoint of OAUTHBEARER clients

    def settings(self, user: str, tmp_path: Path, prefix: str, **overrides: object) -> Settings:
        """Settings of a client connecting as `user` over SASL_SSL."""
        return load_settings(
            env={},
            bootstrap_servers=self.broker.bootstrap,
            topic_prefix=prefix,
            partitions=2,
            state_dir=str(tmp_path / "state"),
            retry_tiers="1s,2s,3s",
            kafka_security_protocol="SASL_SSL",
            kafka_ssl_ca_location=str(self.ca_file),
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username=user,
            kafka_sasl_password=self.passwords[user],
            **overrides,
        )

    def grant(self, bindings: Iterable[AclBinding]) -> None:
        """Create the ACLs, and return once the broker's authorizer applies them (it reads
        them from the metadata log, a moment after the controller committed them)."""
        admin, wanted = self._admin(), list(bindings)  # admin kept until its futures settle
        _settle(admin.create_acls(wanted))
        principals = {b.principal for b in wanted}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            everyone = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None,
                                        None, AclOperation.ANY, AclPermissionType.ANY)
            present = {str(b) for b in admin.describe_acls(everyone).result(timeout=30)
                       if b.principal in principals}
            if {str(b) for b in wanted} <= present:
                return
            time.sleep(0.05)
        raise AssertionError("the broker did not apply the ACLs within 30 s")

    def grant_component(self, component: str, user: str, prefix: str, but: str = "") -> None:
        """The table's ACLs of `component` to `user`, but those whose text contains `but`."""
        self.grant(b for b in acl_bindings(component, f"User:{user}", prefix)
                   if not but or but not in str(b))

    def _admin(self) -> AdminClient:
        return AdminClient({**self.broker.admin_config(), "log_level": 0})


_RESOURCE = {"cluster": "BROKER"}  # confluent-kafka's name for the cluster resource


def acl_bindings(component: str, principal: str, prefix: str) -> list[AclBinding]:
    """hookstream's ACL table as confluent-kafka bindings."""
    return [
        AclBinding(ResourceType[_RESOURCE.get(a.resource, a.resource.upper().replace("-", "_"))],
                   a.name, ResourcePatternType[a.pattern], a.principal, "*",
                   AclOperation[a.operation], AclPermissionType.ALLOW)
        for a in acls(component, principal, prefix)
    ]


def _settle(futures: dict[object, object]) -> None:
    for future in futures.values():
        future.result(timeout=30)  # type: ignore[attr-defined]


OAUTH_CLIENT = "oauth-client"  # the OIDC client id: its tokens' `sub`, Kafka's principal


@contextmanager
def secure_kafka(folder: Path, cache: Path) -> Iterator[SecureKafka]:
    """A SASL_SSL (SCRAM and OAUTHBEARER) + mTLS broker with ACLs, a SCRAM user per
    component and an operator, and an OIDC client."""
    certs = folder / "certs"
    certs.mkdir(parents=True)
    ca = make_ca(certs, "test-ca")
    broker_cert, broker_key = issue(certs, ca, "broker", "IP:127.0.0.1")
    keystore = certs / "broker.pem"
    keystore.write_text(broker_key.read_text() + broker_cert.read_text())
    issue(certs, ca, MTLS_CLIENT)
    passwords = {name: secrets.token_urlsafe(16) for name in ("admin", "operator", *COMPONENTS)}
    with OidcServer({OAUTH_CLIENT: secrets.token_urlsafe(16)}) as oidc:
        secured = Secured(ca[0], keystore, tuple(passwords.items()),
                          oauth_jwks_url=f"{oidc.url}/jwks")
        broker = LocalBroker(folder / "kafka", cache, port=free_port_pair(3), heap_mb=512,
                             secured=secured)
        broker.start()
        try:
            yield SecureKafka(broker, ca[0], passwords, certs, oidc)
        finally:
            broker.stop()
