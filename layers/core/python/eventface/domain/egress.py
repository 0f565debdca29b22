"""The egress policy: where the platform may send a request on a tenant's behalf.

Tenants give us URLs (a CRM's profile URL template, a CRM webhook, a push webhook) and the platform
calls them from inside its network, with secrets attached. So an outbound URL must

- use ``https`` (plain ``http`` only on the local stack, ``EVENTFACE_STAGE=local``);
- carry no ``user:password@`` (credentials belong in the tenant's secret) and keep any
  ``{customer_id}`` placeholder out of the host;
- lead, after DNS resolution, only to public addresses: never loopback, private (RFC 1918),
  shared/CGNAT, link-local, cloud metadata (``169.254.169.254``, ``fd00:ec2::254``), unique-local,
  site-local, multicast, broadcast, unspecified or otherwise reserved ranges, whatever notation
  names them (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``, NAT64, 6to4);
- except exact ``address:port`` pairs on an explicit allow-list (``EVENTFACE_EGRESS_ALLOW``, empty by
  default; the local stack lists its own loopback CRM and push webhook servers, nothing else).

This module holds the pure rules (stdlib only): parsing a URL into its target, reading the odd
IPv4 notations the C resolver accepts, and classifying an address. Resolving names and connecting
to exactly the address that was checked (no DNS-rebinding window) is
:mod:`eventface.adapters.egress`.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from eventface.domain.errors import InvalidInputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Ranges no outbound call may reach, in the order they are checked (the first match names the
#: reason). Anything else that is not globally routable is refused as well (see :func:`refusal`).
_IPV4_REFUSED: Final = tuple(
    (ipaddress.IPv4Network(network), reason)
    for network, reason in (
        ("169.254.169.254/32", "cloud metadata"),
        ("169.254.170.2/32", "container metadata"),
        ("0.0.0.0/8", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_IPV6_REFUSED: Final = tuple(
    (ipaddress.IPv6Network(network), reason)
    for network, reason in (
        ("fd00:ec2::254/128", "cloud metadata"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("fc00::/7", "unique-local"),
        ("ff00::/8", "multicast"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
    )
)
#: IPv6 prefixes that carry an IPv4 address in their last 32 bits (the packet goes to that address).
_IPV4_CARRIERS: Final = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 well-known prefix
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # SIIT IPv4-translated
)
DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class EgressRules:
    """What outbound calls may do.

    Parameters
    ----------
    https_only
        Refuse ``http://`` (true everywhere but the local stack).
    allow
        Exact ``(address, port)`` pairs that may be reached although their address class is
        refused (canonical address text, e.g. ``("127.0.0.1", 50123)``): the local stack's own
        test servers. Empty by default.
    """

    https_only: bool = True
    allow: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    def allows(self, address: IPAddress, port: int) -> bool:
        """Whether ``address:port`` is on the allow-list."""
        return (address.compressed, port) in self.allow


@dataclass(frozen=True, slots=True)
class OutboundTarget:
    """Where a URL leads before DNS: scheme, host (lower-case, no trailing dot), port, and the
    address when the host is an IP literal in any notation (else None: a name to resolve)."""

    scheme: str
    host: str
    port: int
    address: IPAddress | None

    @property
    def origin(self) -> str:
        """``scheme://host:port``: safe for messages (no path, query or credentials)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_allow_list(text: str) -> frozenset[tuple[str, int]]:
    """``"127.0.0.1:50123,[::1]:8080"`` as canonical ``(address, port)`` pairs; ValueError otherwise.

    Entries are IP literals with a port (a name could resolve anywhere); blanks are ignored.
    """
    pairs: set[tuple[str, int]] = set()
    for raw in (entry.strip() for entry in text.split(",")):
        if not raw:
            continue
        host, sep, port_text = raw.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            address = ipaddress.ip_address(host)
            port = int(port_text)
        except ValueError:
            address, port = None, -1
        if not sep or address is None or not 0 < port < 65536:
            raise ValueError(
                f"egress allow-list entry {raw!r} is not an address:port pair: write e.g. "
                "'127.0.0.1:50123' or '[::1]:8080', separated by commas"
            )
        pairs.add((address.compressed, port))
    return frozenset(pairs)


def _ipv4_number(part: str) -> int | None:
    """One part of a loose IPv4 literal (decimal, ``0x`` hex or ``0`` octal), else None."""
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``host`` denotes in any notation ``inet_aton`` accepts, else None.

    ``127.0.0.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``, ``0x7f.0.0.0x1``:
    1 to 4 parts, each decimal, hex or octal, the last one filling the remaining bytes.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    numbers = [_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    last_bits = 8 * (5 - len(values))
    if any(v > 255 for v in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    number = values[-1]
    for index, value in enumerate(values[:-1]):
        number |= value << (24 - 8 * index)
    return ipaddress.IPv4Address(number)


def _looks_numeric(host: str) -> bool:
    """Whether the resolver would read ``host`` as an address rather than a name (its last label
    is a number): such a host must be a valid address, never a name to look up."""
    last = host.rsplit(".", 1)[-1]
    return bool(last) and (last.isdigit() or last[:2].lower() == "0x")


def literal_address(host: str) -> IPAddress | None:
    """The address of an IP-literal host (IPv6 with or without brackets and zone, IPv4 in any
    notation), or None for a name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        try:
            return ipaddress.IPv6Address(bare.replace("%25", "%"))
        except ValueError:
            return None
    return loose_ipv4(bare)


def carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a mapped, compatible, translated or NAT64 IPv6 address delivers to."""
    for carrier in _IPV4_CARRIERS:
        if address in carrier:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def tunnelled_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or Teredo IPv6 address names (its relay or client)."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refusal(address: IPAddress) -> str | None:
    """Why no outbound call may go to ``address`` (e.g. ``"loopback"``), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "link-local (scoped)"
        for network6, reason in _IPV6_REFUSED:
            if address in network6:
                return reason
        carried = carried_ipv4(address)
        if carried is not None:
            # The packet goes to the IPv4 address: it alone decides.
            inner_reason = refusal(carried)
            return None if inner_reason is None else f"{inner_reason} (as {carried} inside an IPv6 address)"
        tunnelled = tunnelled_ipv4(address)
        if tunnelled is not None and (tunnel_reason := refusal(tunnelled)) is not None:
            return f"{tunnel_reason} (as {tunnelled} inside an IPv6 address)"
    else:
        for network4, reason in _IPV4_REFUSED:
            if address in network4:
                return reason
    if not address.is_global:
        return "not globally routable (reserved or documentation range)"
    return None


def address_refusal(rules: EgressRules, address: IPAddress, port: int) -> str | None:
    """Why ``address:port`` may not be called under ``rules``, or None (public, or allow-listed)."""
    if rules.allows(address, port):
        return None
    return refusal(address)


def outbound_target(url: str, rules: EgressRules, *, what: str) -> OutboundTarget:
    """Check the parts of ``url`` that need no DNS and return where it leads.

    Parameters
    ----------
    url
        An outbound URL (a CRM URL template may hold ``{customer_id}`` in its path or query).
    rules
        The deployment's egress rules (for the scheme).
    what
        The field's name, for messages (``crm.url``, ``token``).

    Raises
    ------
    InvalidInputError
        For a scheme other than https (or http on the local stack), credentials in the URL, a
        placeholder or garbage in the host, a bad port, or a numeric host that is no valid address.
    """
    allowed = "https" if rules.https_only else "http or https"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInputError(
            f"{what} is not a valid URL ({exc}): give e.g. 'https://crm.example/...'"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidInputError(f"{what} must be an {allowed} URL, not {scheme or 'scheme-less'!r}")
    if rules.https_only and scheme != "https":
        raise InvalidInputError(
            f"{what} must use https: plain http is only allowed on the local stack (EVENTFACE_STAGE=local)"
        )
    if "@" in parts.netloc:
        raise InvalidInputError(
            f"{what} must not contain 'user:password@': put the credentials in the tenant's secret"
        )
    if "{" in parts.netloc or "}" in parts.netloc:
        raise InvalidInputError(
            f"{what}: the host may not hold a placeholder; put {{customer_id}} in the path"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInputError(f"{what} has no host: give e.g. 'https://crm.example/...'")
    address = literal_address(host)
    if address is None and (":" in host or _looks_numeric(host)):
        raise InvalidInputError(f"{what} host {host!r} is not a valid IP address or host name")
    if address is None and not all(c.isalnum() or c in "-._" for c in host):
        raise InvalidInputError(f"{what} host {host!r} is not a valid host name")
    if address is not None and isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise InvalidInputError(f"{what} host {host!r}: a zoned (link-local) IPv6 address is never reachable")
    return OutboundTarget(scheme, host.lower(), port or DEFAULT_PORTS[scheme], address)


def refused_addresses(
    rules: EgressRules, addresses: Iterable[IPAddress], port: int
) -> list[tuple[IPAddress, str]]:
    """The addresses (with the reason) of a resolved target that ``rules`` refuse."""
    found = []
    for address in addresses:
        reason = address_refusal(rules, address, port)
        if reason is not None:
            found.append((address, reason))
    return found
