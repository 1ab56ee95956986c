"""The address rules and the policy value: every address class, every spelling, no I/O."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config import WorkerConfig
from streams.content import FetchPolicy
from streams.content.addresses import literal_address, parse_networks, refusal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("192.0.0.192", "metadata"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "shared"),
        ("fec0::1", "site_local"),
        ("240.0.0.1", "private"),  # reserved 240/4 (Python files it under private)
        ("255.255.255.255", "private"),
        ("192.0.2.1", "private"),  # documentation ranges
        ("198.18.0.1", "private"),  # benchmarking
        ("2001:db8::1", "private"),
        ("0.1.2.3", "private"),  # "this network"
        # IPv6 forms that carry an IPv4 address are judged by that address
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a00:1::", "private"),
    ],
)
def test_every_special_address_class_is_refused(address: str, kind: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "151.101.1.140", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_allowed_networks_lift_a_refusal_but_never_for_metadata() -> None:
    allowed = parse_networks(["127.0.0.1/32", "169.254.0.0/16", "fd00::/8"])
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None
    assert refusal(ipaddress.ip_address("127.0.0.2"), allowed) == "loopback"
    assert refusal(ipaddress.ip_address("169.254.169.254"), allowed) == "metadata"
    assert refusal(ipaddress.ip_address("fd00:ec2::254"), allowed) == "metadata"


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0X7F000001",
        "0x7f.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "017700000001",
        "127.1",
        "127.0.1",
        "[::ffff:127.0.0.1]",
        "::ffff:7f00:1",
    ],
)
def test_alternative_ip_spellings_parse_to_the_address_they_reach(spelling: str) -> None:
    parsed = literal_address(spelling)
    assert parsed is not None
    assert refusal(parsed) == "loopback"


@pytest.mark.parametrize("spelling", ["0", "0.0", "0x0", "00000", "[::]", "0.0.0.0"])
def test_zero_addresses_are_unspecified(spelling: str) -> None:
    parsed = literal_address(spelling)
    assert parsed is not None and refusal(parsed) == "unspecified"


@pytest.mark.parametrize("name", ["example.com", "localhost", "127.0.0.1.nip.io", "1e100", ""])
def test_names_are_not_literals(name: str) -> None:
    assert literal_address(name) is None


DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=300)


@DETERMINISTIC
@given(st.text(alphabet="0123456789xXabcdefABCDEF.", min_size=1, max_size=20))
def test_literal_parsing_agrees_with_the_c_resolver(host: str) -> None:
    """Any numeric spelling the resolver accepts is recognised as that same address (so it is
    never sent to DNS, and the policy judges what a connection would really reach)."""
    try:
        infos = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM, 0,
                                   socket.AI_NUMERICHOST)  # fmt: skip
    except (socket.gaierror, UnicodeError):
        infos = []
    resolved = {ipaddress.ip_address(info[4][0]) for info in infos}
    literal = literal_address(host)
    if resolved:
        assert resolved == {literal}
    elif literal is not None:  # inet_aton is a little more lenient than getaddrinfo: still IPv4
        assert isinstance(literal, ipaddress.IPv4Address)


@DETERMINISTIC
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_address_in_decimal_hex_and_octal_is_the_same_address(value: int) -> None:
    expected = ipaddress.IPv4Address(value)
    for spelling in (str(value), hex(value), f"0{value:o}"):
        assert literal_address(spelling) == expected


def test_policy_refuses_unknown_schemes_and_bad_networks() -> None:
    with pytest.raises(ValueError, match="ftp"):
        FetchPolicy(schemes=("http", "ftp"))
    with pytest.raises(ValueError):
        FetchPolicy(allow_networks=("not-a-network",))
    with pytest.raises(ValueError):
        FetchPolicy(deadline_s=0)


def test_policy_travels_in_the_worker_config_json() -> None:
    policy = FetchPolicy(
        schemes=("https",), file_roots=("/data",), allow_networks=("127.0.0.1/32",),
        allow_hosts=("Images.Local.",), max_bytes=123, deadline_s=1.5,
    )  # fmt: skip
    assert policy.allow_hosts == ("images.local",)
    config = WorkerConfig(fetch=policy)
    assert WorkerConfig.from_json(config.to_json()).fetch == policy
    assert policy.with_roots("/content").file_roots == ("/data", "/content")


def test_policy_from_settings_splits_lists() -> None:
    from pinclip.settings import Settings

    settings = Settings(
        fetch_schemes="https, file", fetch_file_roots="/a,/b", fetch_allow_networks="10.0.0.0/8",
        max_image_bytes=7, image_fetch_timeout_s=2.0,
    )  # fmt: skip
    policy = FetchPolicy.from_settings(settings)
    assert policy.schemes == ("https", "file")
    assert policy.file_roots == ("/a", "/b")
    assert policy.allow_networks == ("10.0.0.0/8",)
    assert (policy.max_bytes, policy.deadline_s) == (7, 2.0)
    default = FetchPolicy.from_settings(Settings())
    assert default.file_roots == () and default.allow_networks == () and default.allow_hosts == ()
