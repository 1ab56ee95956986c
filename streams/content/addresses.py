"""Which network addresses an image fetch may connect to — pure rules, no I/O.

Built on the standard library's `ipaddress` (the maintained source of the IANA special-purpose
registries) plus what it does not cover in Python 3.11: IPv4 multicast and IPv6 site-local count
as "global" there, and IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4)
must be judged by the IPv4 address inside. The fetcher applies `refusal` to every address a name
resolves to, on every hop, and connects only to an address that passed — so an alternative
spelling of an address (decimal, octal, hex, short forms) is judged by what it resolves to, never
by how it is written.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

AddressClass = Literal[
    "metadata",
    "unspecified",
    "loopback",
    "link_local",
    "multicast",
    "private",
    "reserved",
    "shared",
    "site_local",
    "not_global",
]

#: Cloud instance-metadata endpoints. Refused even when an allowed network contains them: no
#: development setting should ever hand an event the instance's credentials.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    compatible = address in _IPV4_COMPATIBLE and int(address) > 1  # not :: or ::1 themselves
    if compatible or any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(address.packed[-4:])
    return None


def address_class(address: IPAddress) -> AddressClass | None:
    """The special-purpose class of `address`, or None for an ordinary public address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return address_class(inner)
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site_local"
    if address in _SHARED:
        return "shared"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not_global"
    return None


def refusal(address: IPAddress, allowed: Iterable[Network] = ()) -> AddressClass | None:
    """Why a fetch may not connect to `address` (its class), or None when it may.

    `allowed` networks (a development setting, empty by default) lift the refusal for addresses
    inside them — except for cloud-metadata addresses, which are always refused.
    """
    kind = address_class(address)
    if kind is None or kind == "metadata":
        return kind
    plain = embedded_ipv4(address) or address
    if any(plain in network for network in allowed if network.version == plain.version):
        return None
    return kind


def literal_address(host: str) -> IPAddress | None:
    """`host` as an IP address if it is written as one — in any spelling the C resolver accepts
    (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, `[::ffff:127.0.0.1]`, `::1%eth0`) — else None.

    Numeric hosts never go to DNS. IPv4 shorthand is parsed by `socket.inet_aton`, the same C
    parser `getaddrinfo` uses, so this can never disagree with where a connection would go.
    """
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not text or not all(c.isalnum() or c == "." for c in text) or ":" in text:
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (`127.0.0.1/32`, `10.1.0.0/16`, a bare address) → networks; ValueError if bad."""
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs if spec.strip())
