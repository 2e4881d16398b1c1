"""Client addresses and CIDR allow-lists.

The client address is the socket's peer, unless that peer is a proxy the operator trusts
(``REGISTRY_TOKENS_TRUSTED_PROXIES``): then ``X-Forwarded-For`` is read from the right,
skipping trusted proxies, and the first address that is not one is the client. A client
cannot forge its way past an allow-list by sending the header itself.
"""

import functools
import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_CIDRS = 100


@functools.lru_cache(maxsize=4096)
def parse_address(value: str) -> Address | None:
    """An address, or None. Memoized: each request parses its peer's (addresses are
    immutable values; a CI fleet installs from a few hundred of them)."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:192.0.2.1 is 192.0.2.1
    return address


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_networks(values: Iterable[str]) -> list[Network]:
    """Networks from strings; raises ``ValueError`` naming the first bad one.

    An IPv4-mapped IPv6 network (within ``::ffff:0:0/96``) is the IPv4 network it maps
    exactly (``::ffff:10.0.0.0/104`` is ``10.0.0.0/8``): client addresses are seen that
    way (:func:`parse_address`), so as written it could never match one.
    """
    networks: list[Network] = []
    for value in values:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IPv4 or IPv6 address or CIDR") from exc
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
            mapped = int(network.network_address) - int(_IPV4_MAPPED.network_address)
            network = ipaddress.IPv4Network((mapped, network.prefixlen - _IPV4_MAPPED.prefixlen))
        networks.append(network)
    return networks


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[Network]
) -> str | None:
    """The client's address, or ``None`` when a trusted proxy's header cannot be read.

    ``forwarded_for`` is every ``X-Forwarded-For`` line joined with commas (proxies may
    append a line rather than extend one). An unreadable hop yields ``None``, which no
    allow-list admits: failing closed, rather than falling back to the proxy's address.
    """
    address = parse_address(peer) if peer else None
    if address is None:
        return None
    if forwarded_for and _within(address, trusted_proxies):
        for hop in reversed(forwarded_for.split(",")):
            candidate = _parse_hop(hop)
            if candidate is None:
                return None
            address = candidate
            if not _within(candidate, trusted_proxies):
                break
    return str(address)


def _parse_hop(hop: str) -> Address | None:
    """One X-Forwarded-For entry: an address, possibly with a port (``1.2.3.4:80``,
    ``[2001:db8::1]:80``)."""
    hop = hop.strip()
    if hop.startswith("[") and "]" in hop:
        hop = hop[1 : hop.index("]")]
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    return parse_address(hop)


def address_allowed(address: str | None, cidrs: Sequence[str]) -> bool:
    parsed = parse_address(address) if address else None
    return parsed is not None and _within(parsed, parse_networks(cidrs))


def _within(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)
