"""The SSRF address policy: table-driven over every refused range, v4 and v6."""

from __future__ import annotations

import ipaddress

import pytest

from hookstream.policy import blocked_reason, literal_ipv4, parse_networks

# (address, a word the reason must contain)
REFUSED = [
    # IPv4
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("169.254.0.1", "link-local"),
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("100.100.100.200", "metadata"),
    ("192.0.0.192", "metadata"),
    ("168.63.129.16", "metadata"),
    ("192.0.0.8", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fd00:ec2::254", "metadata"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("2001:2::1", "benchmarking"),
    ("64:ff9b:1::1", "local-use NAT64"),
    # IPv6 forms that carry an IPv4 address
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("64:ff9b::127.0.0.1", "embeds 127.0.0.1 (loopback)"),
    ("64:ff9b::a9fe:a9fe", "embeds 169.254.169.254"),
    ("2002:7f00:1::1", "embeds 127.0.0.1 (loopback)"),
    ("2002:c0a8:101::1", "embeds 192.168.1.1 (private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    # Not an address at all: fail closed.
    ("localhost", "not an IP address"),
    ("", "not an IP address"),
]

ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",  # just outside 172.16.0.0/12
    "100.128.0.1",  # just outside 100.64.0.0/10
    "2606:4700::1111",
    "2a00:1450:4007:80e::200e",
    "::ffff:93.184.216.34",
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_refused(address: str, why: str) -> None:
    reason = blocked_reason(address, ())
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert blocked_reason(address, ()) is None


@pytest.mark.parametrize(
    ("allow", "address"),
    [
        (["127.0.0.0/8"], "127.0.0.1"),
        (["127.0.0.0/8"], "::ffff:127.0.0.1"),  # judged unmapped
        (["::ffff:127.0.0.0/104"], "127.0.0.1"),  # mapped entry stored unmapped
        (["::1"], "::1"),
        (["10.1.2.3"], "10.1.2.3"),
        (["169.254.169.254/32"], "169.254.169.254"),  # an explicit choice is honoured
        (["fd00::/8"], "fd12::1"),
    ],
)
def test_allow_list_permits(allow: list[str], address: str) -> None:
    assert blocked_reason(address, parse_networks(allow)) is None


@pytest.mark.parametrize(
    ("allow", "address"),
    [
        (["127.0.0.0/8"], "10.0.0.1"),
        (["127.0.0.0/8"], "::1"),  # IPv4 loopback does not allow IPv6 loopback
        (["10.1.2.3"], "10.1.2.4"),
        (["::1"], "127.0.0.1"),
    ],
)
def test_allow_list_is_exact(allow: list[str], address: str) -> None:
    assert blocked_reason(address, parse_networks(allow)) is not None


def test_parse_networks() -> None:
    assert parse_networks(["127.0.0.0/8", " ::1 ", "10.1.2.3"]) == (
        ipaddress.IPv4Network("127.0.0.0/8"),
        ipaddress.IPv6Network("::1/128"),
        ipaddress.IPv4Network("10.1.2.3/32"),
    )
    assert parse_networks([]) == ()


@pytest.mark.parametrize("spec", ["10.0.0.0/33", "not-a-net", "10.1.2.3/8", "", "fe80::/300"])
def test_parse_networks_names_the_bad_spec(spec: str) -> None:
    with pytest.raises(ValueError, match="in allow-list") as caught:
        parse_networks(["127.0.0.0/8", spec])
    assert repr(spec) in str(caught.value)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0000.0000.0001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("4294967295", "255.255.255.255"),
    ],
)
def test_literal_ipv4_spellings(host: str, address: str) -> None:
    assert literal_ipv4(host) == address


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "",
        "4294967296",  # 2**32
        "256.0.0.1",
        "1.2.3.4.5",
        "127.0.0.1.",
        "1..1",
        "08.0.0.1",  # 8 is no octal digit
        "0x",
        "0xg1",
        "127.0.0.1 extra",
        "-1",
        "+1",
        "1.2.65536",
        "١٢٧.0.0.1",  # Arabic-Indic digits are not inet_aton digits
        "::1",
    ],
)
def test_literal_ipv4_rejects_other_hosts(host: str) -> None:
    assert literal_ipv4(host) is None


def test_literal_ipv4_agrees_with_blocked_reason() -> None:
    address = literal_ipv4("0x7f.1")
    assert address is not None
    assert blocked_reason(address, ()) == "loopback: 127.0.0.1"
