"""Which IP addresses a webhook may connect to: the pure core of the SSRF guard.

Webhook URLs are written by GLPI administrators, and a GLPI account with the
`config` right must not turn hookstream into a proxy towards the cluster's own
network, the loopback interface or a cloud metadata service. This module answers
one question, "may we connect to this address?", for the address the socket is
about to connect to; `connectors/delivery/http/guard.py` asks it at connect time.

Nothing here resolves names or opens sockets.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_v4 = ipaddress.IPv4Network
_v6 = ipaddress.IPv6Network

# Cloud metadata endpoints come first so that the reason names them: most sit
# inside a range refused anyway, but 168.63.129.16 (Azure's wire server) is a
# public address and would otherwise be allowed.
_METADATA: tuple[tuple[Network, str], ...] = (
    (_v4("169.254.169.254/32"), "cloud metadata service (AWS, GCP, Azure, OpenStack, OCI)"),
    (_v4("169.254.170.2/32"), "cloud metadata service (AWS ECS task credentials)"),
    (_v4("100.100.100.200/32"), "cloud metadata service (Alibaba Cloud)"),
    (_v4("192.0.0.192/32"), "cloud metadata service (Oracle Cloud)"),
    (_v4("168.63.129.16/32"), "cloud metadata service (Azure wire server)"),
    (_v6("fd00:ec2::254/128"), "cloud metadata service (AWS IMDS over IPv6)"),
    (_v6("fd00:ec2::23/128"), "cloud metadata service (AWS time and DNS over IPv6)"),
)

# Special-purpose IPv4 ranges (IANA registry), most specific first.
_V4_RANGES: tuple[tuple[Network, str], ...] = (
    (_v4("0.0.0.0/32"), "unspecified address"),
    (_v4("255.255.255.255/32"), "broadcast address"),
    (_v4("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (_v4("127.0.0.0/8"), "loopback"),
    (_v4("10.0.0.0/8"), "private network (RFC 1918)"),
    (_v4("172.16.0.0/12"), "private network (RFC 1918)"),
    (_v4("192.168.0.0/16"), "private network (RFC 1918)"),
    (_v4("100.64.0.0/10"), "carrier-grade NAT (RFC 6598)"),
    (_v4("169.254.0.0/16"), "link-local"),
    (_v4("192.0.0.0/24"), "IETF protocol assignments"),
    (_v4("192.0.2.0/24"), "documentation (TEST-NET-1)"),
    (_v4("198.51.100.0/24"), "documentation (TEST-NET-2)"),
    (_v4("203.0.113.0/24"), "documentation (TEST-NET-3)"),
    (_v4("192.88.99.0/24"), "6to4 relay anycast (deprecated)"),
    (_v4("198.18.0.0/15"), "benchmarking (RFC 2544)"),
    (_v4("224.0.0.0/4"), "multicast"),
    (_v4("240.0.0.0/4"), "reserved"),
)

# Special-purpose IPv6 ranges. IPv4-mapped (::ffff:0:0/96), NAT64 and 6to4 are
# not listed: they are unwrapped and judged by the IPv4 address they carry.
_V6_RANGES: tuple[tuple[Network, str], ...] = (
    (_v6("::/128"), "unspecified address"),
    (_v6("::1/128"), "loopback"),
    # Deprecated by RFC 4291; nothing legitimate uses it, and stacks that still
    # honour it would reach the embedded IPv4 address.
    (_v6("::/96"), "IPv4-compatible IPv6 (deprecated)"),
    (_v6("64:ff9b:1::/48"), "local-use NAT64 (RFC 8215)"),
    (_v6("100::/64"), "discard-only (RFC 6666)"),
    # Teredo obfuscates the addresses it embeds, so it cannot be vetted.
    (_v6("2001::/32"), "Teredo tunnelling"),
    (_v6("2001:2::/48"), "benchmarking (RFC 5180)"),
    (_v6("2001:db8::/32"), "documentation"),
    (_v6("3fff::/20"), "documentation (RFC 9637)"),
    (_v6("fc00::/7"), "unique local address (private)"),
    (_v6("fe80::/10"), "link-local"),
    (_v6("fec0::/10"), "site-local (deprecated)"),
    (_v6("ff00::/8"), "multicast"),
)

_NAT64 = _v6("64:ff9b::/96")
_SIX_TO_FOUR = _v6("2002::/16")
_V4_MAPPED = _v6("::ffff:0:0/96")


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """Parse allow-list entries such as "127.0.0.0/8", "::1" or "10.1.2.3".

    A bare address is a single-host network. Host bits set under a prefix
    ("10.1.2.3/8") are refused rather than silently widened: the author may have
    meant either the host or the network. IPv4-mapped IPv6 networks are stored as
    their IPv4 equivalent, since addresses are compared unmapped.

    Raises ValueError naming the first invalid spec.
    """
    networks: list[Network] = []
    for spec in specs:
        text = spec.strip()
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as e:
            raise ValueError(f"invalid network {spec!r} in allow-list: {e}") from e
        networks.append(_unmap_network(network))
    return tuple(networks)


def blocked_reason(address: str, allow: Sequence[Network]) -> str | None:
    """Why connecting to `address` is refused, or None; see `_blocked_reason`. Cached: the
    delivery hot path asks for the same few addresses and allow-lists again and again."""
    return _blocked_reason_cached(address, tuple(allow))


@functools.lru_cache(maxsize=8192)
def _blocked_reason_cached(address: str, allow: tuple[Network, ...]) -> str | None:
    return _blocked_reason(address, allow)


def _blocked_reason(address: str, allow: Sequence[Network]) -> str | None:
    """Why `address` must not be connected to, or None when it may be.

    Refuses every address that is not globally routable (loopback, private,
    link-local, CGNAT, multicast, unspecified, reserved, broadcast, documentation,
    benchmarking), cloud metadata endpoints, and IPv6 forms that reach an IPv4
    address by another route: IPv4-mapped and NAT64/6to4 addresses are judged by
    the IPv4 address they embed; IPv4-compatible and Teredo addresses are refused.

    An allow-list network that contains the address (IPv4-mapped addresses are
    unmapped first) permits it whatever its range. Unparseable input is refused:
    the guard fails closed.
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"not an IP address: {address!r}"
    ip = _unmap(parsed)
    if any(ip in net for net in allow if net.version == ip.version):
        return None
    reason = _special_range(ip)
    if reason is None:
        return None
    shown = str(parsed) if ip is parsed else f"{parsed} (= {ip})"
    return f"{reason}: {shown}"


@functools.lru_cache(maxsize=8192)
def literal_ipv4(host: str) -> str | None:
    """The dotted-quad address a legacy `inet_aton` spelling denotes, else None.

    getaddrinfo and most HTTP stacks accept "2130706433", "0x7f000001",
    "0177.0.0.1", "127.1" and "0x7f.1" as 127.0.0.1, so a URL check that only
    recognises dotted quads can be walked around. Rules, as inet_aton: one to four
    dot-separated parts, each decimal, hexadecimal (0x) or octal (leading 0); the
    last part fills all remaining bytes. Unlike glibc's inet_aton, trailing text
    is not ignored.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _aton_part(part)
        if value is None:
            return None
        values.append(value)
    *leading, last = values
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return str(ipaddress.IPv4Address(number))


def _aton_part(part: str) -> int | None:
    """One inet_aton component: 0x-hex, 0-octal or decimal; None if malformed."""
    lowered = part.lower()
    if lowered.startswith("0x"):
        digits, base, alphabet = lowered[2:], 16, "0123456789abcdef"
    elif len(lowered) > 1 and lowered.startswith("0"):
        digits, base, alphabet = lowered[1:], 8, "01234567"
    else:
        digits, base, alphabet = lowered, 10, "0123456789"
    # str.isdigit() would accept other Unicode digits; check the exact alphabet.
    if not digits or any(c not in alphabet for c in digits):
        return None
    return int(digits, base)


def _special_range(ip: Address) -> str | None:
    """The reason `ip` is special-purpose, or None for a global unicast address."""
    for network, reason in _METADATA:
        if ip.version == network.version and ip in network:
            return reason
    if isinstance(ip, ipaddress.IPv4Address):
        for network, reason in _V4_RANGES:
            if ip in network:
                return reason
    else:
        for network, reason in _V6_RANGES:
            if ip in network:
                return reason
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = _special_range(embedded)
            return None if inner is None else f"embeds {embedded} ({inner})"
    # Safety net for ranges the tables above miss, using Python's copy of the
    # IANA special-purpose registries.
    if not ip.is_global:
        return "not globally routable"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address reaches."""
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def _unmap(ip: Address) -> Address:
    """::ffff:a.b.c.d is a.b.c.d on the wire, so judge it as such."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _unmap_network(network: Network) -> Network:
    """An allow-list entry inside ::ffff:0:0/96, written as the IPv4 network it covers."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_V4_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # every address in ::ffff:0:0/96 is mapped
        return ipaddress.IPv4Network((int(mapped), network.prefixlen - 96))
    return network
