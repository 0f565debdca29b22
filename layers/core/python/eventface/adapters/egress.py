"""The egress policy enforced: tenant-given URLs are checked when saved and again when connecting.

:class:`EgressGuard` applies :mod:`eventface.domain.egress` twice:

- :meth:`EgressGuard.check_url` when a tenant saves a URL (a venue's CRM URL, a webhook staff
  device, a participant's webhook push address): scheme, host, and every address the name resolves
  to now. A refused URL is a clear 400. A name that does not resolve yet is accepted (it is checked
  again when it is called);
- :meth:`EgressGuard.opener` when the platform calls it: an ``urllib`` opener whose connections
  resolve the host, check *every* address it resolves to, and connect to the address that was
  checked (no second lookup, so no DNS-rebinding window). It follows no redirects, uses no proxy,
  speaks only http(s), and refuses plain http outside the local stack. A refusal raises
  :class:`EgressRefusedError` (not an ``OSError``: ``urllib`` passes it through unwrapped, and
  callers turn it into "unavailable" with the reason; it is never retried).
"""

from __future__ import annotations

import functools
import http.client
import socket
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, Final

from eventface.domain.egress import (
    EgressRules,
    IPAddress,
    literal_address,
    outbound_target,
    refused_addresses,
)
from eventface.domain.errors import InvalidInputError
from eventface.settings import Settings, get_settings

LOCAL_STAGE: Final = "local"

#: Resolves a host name for a TCP connection to ``port``: every address it has (OSError if none).
Resolver = Callable[[str, int], Sequence[IPAddress]]


class EgressRefusedError(Exception):
    """An outbound call the egress policy refuses (the message says why and what to do)."""


def system_resolver(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address ``host`` resolves to for TCP (the operating system's resolver)."""
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    ):
        address = literal_address(str(sockaddr[0]))
        if address is None:
            raise OSError(f"the resolver answered {sockaddr[0]!r} for {host!r}, which is not an address")
        if address not in found:
            found.append(address)
    return tuple(found)


class StaticResolver:
    """Names resolved from a table (tests; unknown names fail as a missing name does)."""

    def __init__(self, names: Mapping[str, Sequence[str]] | None = None) -> None:
        self.names = {name: tuple(addresses) for name, addresses in (names or {}).items()}

    def __call__(self, host: str, port: int) -> tuple[IPAddress, ...]:
        addresses = self.names.get(host.lower())
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the test resolver's table")
        return tuple(a for a in (literal_address(text) for text in addresses) if a is not None)


class EgressGuard:
    """Checks outbound URLs against :class:`~eventface.domain.egress.EgressRules` and makes the
    connections that enforce them.

    Parameters
    ----------
    rules
        https-only and the allow-list (:func:`rules_from_settings` for the deployment's).
    resolver
        Host name to addresses; the system resolver by default.
    """

    def __init__(self, rules: EgressRules, *, resolver: Resolver = system_resolver) -> None:
        self.rules = rules
        self._resolve = resolver

    def check_url(self, url: str, *, what: str) -> None:
        """Refuse a URL the platform may not call, when a tenant saves it.

        Raises
        ------
        InvalidInputError
            The scheme, host or port is refused, or the host is (or resolves to) an address that is
            not public and not on the allow-list; the message names the field, the address class
            and what to do.
        """
        target = outbound_target(url, self.rules, what=what)
        if target.address is not None:
            addresses: Sequence[IPAddress] = (target.address,)
        else:
            try:
                addresses = self._resolve(target.host, target.port)
            except (OSError, UnicodeError):
                # Not resolvable now (a CRM being set up): it is checked again on every connection.
                return
        refused = refused_addresses(self.rules, addresses, target.port)
        if refused:
            address, reason = refused[0]
            named = "is" if target.address is not None else f"resolves to {address}, which is"
            raise InvalidInputError(
                f"{what} {target.origin} {named} a {reason} address: the platform calls only public "
                "addresses; give the service's public https URL"
            )

    def addresses(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """The addresses to connect to for ``host:port``, all of them checked.

        Raises
        ------
        EgressRefusedError
            When any address ``host`` resolves to is refused (a name with one private address among
            public ones is refused as a whole).
        OSError
            When the name does not resolve.
        """
        literal = literal_address(host)
        addresses = (literal,) if literal is not None else tuple(self._resolve(host, port))
        refused = refused_addresses(self.rules, addresses, port)
        if refused:
            address, reason = refused[0]
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            shown = where if literal is not None else f"{where} ({address})"
            raise EgressRefusedError(
                f"the egress policy refuses {shown}, a {reason} address: only public addresses "
                "are called; fix the URL"
            )
        if not addresses:
            raise OSError(f"{host} resolved to no address")
        return addresses

    def create_connection(
        self,
        address: tuple[str, int],
        timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
        source_address: tuple[str, int] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> socket.socket:
        """``socket.create_connection`` to the checked addresses of ``address`` (the host is resolved
        once, here; each candidate is an IP literal, so nothing is looked up again)."""
        host, port = address
        last_error = OSError(f"{host} resolved to no address")
        for checked in self.addresses(host, port):
            try:
                return socket.create_connection((checked.compressed, port), timeout, source_address)
            except OSError as exc:
                last_error = exc
        raise last_error

    def opener(self) -> urllib.request.OpenerDirector:
        """An ``urllib`` opener that enforces the policy on every connection (see the module)."""
        opener = urllib.request.OpenerDirector()
        for handler in (
            urllib.request.UnknownHandler(),
            urllib.request.HTTPDefaultErrorHandler(),
            _NoRedirect(),
            urllib.request.HTTPErrorProcessor(),
            _GuardedHTTPHandler(self),
            _GuardedHTTPSHandler(self),
        ):
            opener.add_handler(handler)
        return opener


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, guard: EgressGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # http.client opens every socket through this hook (HTTPSConnection wraps it in TLS with
        # the URL's host name for SNI and certificate checks afterwards).
        self._create_connection = guard.create_connection


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, guard: EgressGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = guard.create_connection


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: EgressGuard) -> None:
        super().__init__()
        self._guard = guard

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        if self._guard.rules.https_only:
            raise EgressRefusedError(
                "the egress policy refuses plain http outside the local stack: use the https URL"
            )
        return self.do_open(functools.partial(_GuardedHTTPConnection, guard=self._guard), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: EgressGuard) -> None:
        super().__init__()
        self._guard = guard

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            functools.partial(_GuardedHTTPSConnection, guard=self._guard),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuses redirects: a redirect would send the request (and its credentials) to a host that
    was never checked. The 3xx reaches the caller as an answer instead."""

    # The signature is urllib's (positional arguments included), so it cannot be narrowed.
    def redirect_request(  # noqa: PLR0917
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def rules_from_settings(settings: Settings) -> EgressRules:
    """The deployment's rules: https only unless the stage is ``local``; the allow-list of
    ``EVENTFACE_EGRESS_ALLOW``."""
    return EgressRules(https_only=settings.stage != LOCAL_STAGE, allow=settings.egress_allow)


@functools.lru_cache(maxsize=8)
def _guard(https_only: bool, allow: frozenset[tuple[str, int]]) -> EgressGuard:
    return EgressGuard(EgressRules(https_only, allow))


def guard_from_settings(settings: Settings | None = None) -> EgressGuard:
    """The guard of ``settings`` (the process settings by default), kept per distinct rules."""
    rules = rules_from_settings(settings or get_settings())
    return _guard(rules.https_only, rules.allow)
