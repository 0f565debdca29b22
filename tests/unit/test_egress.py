"""The egress policy's pure rules and its save-time check: URL parts, IPv4 notations, address classes."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from eventface.adapters.egress import EgressGuard, EgressRefusedError, StaticResolver, rules_from_settings
from eventface.domain.egress import (
    EgressRules,
    address_refusal,
    literal_address,
    loose_ipv4,
    outbound_target,
    parse_allow_list,
    refusal,
)
from eventface.domain.errors import InvalidInputError
from eventface.settings import EGRESS_ALLOW, STAGE, Settings, SettingsError

LOCAL = EgressRules(https_only=False)
DEPLOYED = EgressRules()


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0x0", "0.0.0.0"),
        ("2852039166", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_loose_ipv4_reads_every_notation_the_c_resolver_accepts(host: str, address: str) -> None:
    # when
    parsed = loose_ipv4(host)
    # then: the same address as the C library's inet_aton (what getaddrinfo would connect to)
    assert parsed == ipaddress.IPv4Address(address)
    assert socket.inet_aton(host) == parsed.packed


@pytest.mark.parametrize(
    "host",
    [
        "crm.example",
        "1.2.3.4.5",
        "256.0.0.1",
        "0x100.0.0.1",
        "08.0.0.1",
        "1..2",
        "",
        "127.0.0.1x",
        "4294967296",
    ],
)
def test_loose_ipv4_is_none_for_what_is_not_an_address(host: str) -> None:
    assert loose_ipv4(host) is None


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("2130706433", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("0x7f.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("0", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "CGNAT"),
        ("100.100.100.200", "CGNAT"),
        ("169.254.169.254", "cloud metadata"),
        ("2852039166", "cloud metadata"),
        ("169.254.170.2", "container metadata"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.192", "IETF"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.2.1", "not globally routable"),
        ("203.0.113.9", "not globally routable"),
        ("::1", "loopback"),
        ("[::1]", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("fd00::1", "unique-local"),
        ("fc00::1", "unique-local"),
        ("fd00:ec2::254", "cloud metadata"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback (as 127.0.0.1"),
        ("[::ffff:7f00:1]", "loopback (as 127.0.0.1"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("::127.0.0.1", "loopback"),
        ("::ffff:0:127.0.0.1", "loopback"),
        ("64:ff9b::127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2002:7f00:1::1", "loopback"),
        ("2002:a9fe:a9fe::1", "cloud metadata"),
        ("2001:db8::1", "not globally routable"),
        ("100::1", "discard-only"),
    ],
)
def test_address_classifier_refuses_every_non_public_form(host: str, reason: str) -> None:
    # given an address in one of its many spellings
    address = literal_address(host)
    # when / then
    assert address is not None
    found = refusal(address)
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "134744072", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_address_classifier_lets_public_addresses_through(host: str) -> None:
    address = literal_address(host)
    assert address is not None and refusal(address) is None


def test_allow_list_lets_exactly_the_listed_address_and_port_through() -> None:
    # given the local stack's rule: one loopback server
    rules = EgressRules(https_only=False, allow=parse_allow_list("127.0.0.1:50123, [::1]:8080"))
    loopback = ipaddress.ip_address("127.0.0.1")
    # then that pair only
    assert address_refusal(rules, loopback, 50123) is None
    assert address_refusal(rules, ipaddress.ip_address("::1"), 8080) is None
    assert address_refusal(rules, loopback, 50124) == "loopback"
    assert address_refusal(rules, ipaddress.ip_address("127.0.0.2"), 50123) == "loopback"


@pytest.mark.parametrize(
    "text", ["localhost:80", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "[::1]", "x:1"]
)
def test_allow_list_entries_must_be_address_port_pairs(text: str) -> None:
    with pytest.raises(ValueError, match="address:port"):
        parse_allow_list(text)


def test_allow_list_setting_is_empty_by_default_and_refuses_garbage() -> None:
    assert Settings({}).egress_allow == frozenset()
    assert Settings({EGRESS_ALLOW: "127.0.0.1:9001,"}).egress_allow == {("127.0.0.1", 9001)}
    with pytest.raises(SettingsError, match=EGRESS_ALLOW):
        _ = Settings({EGRESS_ALLOW: "localhost:9001"}).egress_allow


@pytest.mark.parametrize(
    ("stage", "https_only"),
    [({}, False), ({STAGE: "local"}, False), ({STAGE: "prod"}, True), ({STAGE: "dev"}, True)],
)
def test_rules_are_https_only_outside_the_local_stage(stage: dict[str, str], https_only: bool) -> None:
    assert rules_from_settings(Settings(stage)).https_only is https_only


@pytest.mark.parametrize(
    ("url", "rules", "words"),
    [
        ("http://crm.example/{customer_id}", DEPLOYED, "must use https"),
        ("ftp://crm.example/{customer_id}", LOCAL, "http or https"),
        ("file:///etc/passwd", LOCAL, "http or https"),
        ("gopher://127.0.0.1:6379/_", LOCAL, "http or https"),
        ("https://user:pw@crm.example/x", DEPLOYED, "user:password@"),
        ("https://crm.example@127.0.0.1/x", DEPLOYED, "user:password@"),
        ("https://{customer_id}.crm.example/", DEPLOYED, "placeholder"),
        ("https://crm.example:99999/", DEPLOYED, "not a valid URL"),
        ("https:///path", DEPLOYED, "no host"),
        ("https://08.0.0.1/", DEPLOYED, "not a valid IP address"),
        ("https://1.2.3.4.5/", DEPLOYED, "not a valid IP address"),
        ("https://127.0.0.%31/", DEPLOYED, "not a valid host name"),
        ("https://[fe80::1%25eth0]/", DEPLOYED, "zoned"),
    ],
)
def test_outbound_url_parts_are_checked_before_any_lookup(url: str, rules: EgressRules, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        outbound_target(url, rules, what="crm.url")


def test_outbound_target_reads_host_port_and_literal_address() -> None:
    target = outbound_target("https://CRM.Example.:8443/api/{customer_id}", DEPLOYED, what="crm.url")
    assert (target.host, target.port, target.address, target.origin) == (
        "crm.example",
        8443,
        None,
        "https://crm.example:8443",
    )
    decimal = outbound_target("http://2130706433/x", LOCAL, what="crm.url")
    assert decimal.address == ipaddress.IPv4Address("127.0.0.1") and decimal.port == 80


RESOLVER = StaticResolver(
    {
        "crm.example": ["93.184.216.34"],
        "rebind.example": ["127.0.0.1"],
        "metadata.example": ["169.254.169.254"],
        "mixed.example": ["93.184.216.34", "10.0.0.7"],
        "v6.example": ["2606:4700:4700::1111", "fd00:ec2::254"],
    }
)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://rebind.example/{customer_id}", "resolves to 127.0.0.1, which is a loopback address"),
        ("https://metadata.example/latest", "cloud metadata"),
        ("https://mixed.example/x", "resolves to 10.0.0.7, which is a private address"),
        ("https://v6.example/x", "cloud metadata"),
        ("https://169.254.169.254/latest/meta-data/", "is a cloud metadata address"),
        ("https://[::ffff:127.0.0.1]:8443/", "loopback"),
        ("https://0x7f.1/", "loopback"),
    ],
)
def test_guard_refuses_a_url_whose_host_resolves_to_a_non_public_address(url: str, words: str) -> None:
    guard = EgressGuard(DEPLOYED, resolver=RESOLVER)
    with pytest.raises(InvalidInputError, match=words.replace("(", r"\(")) as refused:
        guard.check_url(url, what="crm.url")
    assert "crm.url" in str(refused.value) and "public" in str(refused.value)


def test_guard_accepts_public_names_and_names_that_do_not_resolve_yet() -> None:
    guard = EgressGuard(DEPLOYED, resolver=RESOLVER)
    guard.check_url("https://crm.example/api/{customer_id}", what="crm.url")
    guard.check_url("https://not-yet.example/api/{customer_id}", what="crm.url")


def test_guard_connect_time_check_refuses_before_any_socket_is_opened() -> None:
    # given a name that resolves to loopback (a rebinding name, say)
    guard = EgressGuard(LOCAL, resolver=RESOLVER)
    # when / then
    with pytest.raises(EgressRefusedError, match=r"rebind\.example:443 \(127\.0\.0\.1\), a loopback address"):
        guard.create_connection(("rebind.example", 443), timeout=0.1)
    with pytest.raises(EgressRefusedError, match=r"\[::1\]:80, a loopback"):
        guard.addresses("::1", 80)
