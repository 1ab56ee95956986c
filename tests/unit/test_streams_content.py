"""The fetch path on real files and real local HTTP(S) servers that log what they receive.

Every test that names a loopback server without allowing it checks the server's own request log:
a refused fetch must not reach it at all, not merely fail afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme
from fetch_servers import BODY, GZIPPED, ImageServer
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.content import (
    BlockingFetcher,
    ContentError,
    ContentFetcher,
    ContentStore,
    FetchPolicy,
    load_image_bytes,
)
from streams.content.addresses import IPAddress
from streams.content.reasons import DETAILS
from streams.events import NewPin

# Deadlines in these tests are generous for what must succeed (a loaded CI machine) and far
# below what must time out (/slow?s=4, /trickle takes 10 s).
LOCAL = FetchPolicy(allow_networks=("127.0.0.1/32",), deadline_s=2.0, max_bytes=1_000)
Servers = Callable[..., ImageServer]


def pin(pin_id: str, **image: str) -> NewPin:
    return NewPin.model_validate(
        {"pin_id": pin_id, "board_id": "b", "user_id": "u", "title": "t",
         "created_at": datetime.now(UTC).isoformat(), **image}
    )  # fmt: skip


async def outcome(fetcher: ContentFetcher, uri: str) -> bytes | str:
    try:
        return await fetcher.fetch_uri(uri)
    except ContentError as exc:
        return exc.reason


def fake_dns(answers: dict[str, list[str]], calls: list[str] | None = None) -> Callable:
    """Injected DNS answers (the one seam: no test DNS server can be reached from here)."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        if calls is not None:
            calls.append(host)
        return [ipaddress.ip_address(a) for a in answers.get(host, [])]

    return resolve


# --- the address policy, end to end ------------------------------------------------------------


async def test_a_loopback_server_named_in_events_receives_no_request(
    image_server: Servers,
) -> None:
    v4, v6 = image_server("127.0.0.1"), image_server("::1")
    port = v4.port
    spellings = [
        v4.url(), v4.url(host="localhost"), v4.url(host="LocalHost"),
        v4.url(host="2130706433"), v4.url(host="0x7f000001"), v4.url(host="0x7f.1"),
        v4.url(host="0177.0.0.1"), v4.url(host="127.1"), v4.url(host="[::ffff:127.0.0.1]"),
        v4.url(host="[::ffff:7f00:1]"), v4.url(host="0"), v4.url(host="0.0.0.0"),
        f"http://[::]:{port}/ok", v6.url(), f"https://127.0.0.1:{port}/ok",
    ]  # fmt: skip
    events = [pin(f"p{i}", image_uri=uri) for i, uri in enumerate(spellings)]
    async with ContentFetcher() as fetcher:
        results = await fetcher.fetch_many(events)
    reasons = [getattr(r, "reason", r) for r in results]
    # refused by the address policy, or already by the URL parser (httpx rejects `0177.0.0.1`)
    assert set(reasons) == {"forbidden", "unsupported_uri"}, reasons
    assert reasons.count("forbidden") >= len(spellings) - 1
    assert v4.requests == [] and v6.requests == []


async def test_redirects_are_rechecked_on_every_hop(image_server: Servers) -> None:
    public = image_server("127.0.0.2")  # stands in for a public server (allowed below)
    secret = image_server("127.0.0.1")  # a private service: never allowed
    policy = FetchPolicy(allow_networks=("127.0.0.2/32",), deadline_s=2.0)
    targets = [
        secret.url("/secret"), secret.url("/secret", host="localhost"),
        secret.url("/secret", host="2130706433"), "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/_x",
    ]  # fmt: skip
    async with ContentFetcher(policy) as fetcher:
        for target in targets:
            hop = public.url(f"/redirect?to={quote(target, safe='')}")
            assert await outcome(fetcher, hop) in ("forbidden", "unsupported_uri"), target
        # a chain of allowed hops is followed, and counted
        chain = public.url(f"/redirect?to={quote(public.url('/ok'), safe='')}")
        assert await outcome(fetcher, chain) == BODY
        before = len(public.requests)
        assert await outcome(fetcher, public.url("/loop")) == "unreachable"
        assert len(public.requests) - before == policy.max_redirects + 1
    assert secret.requests == []


async def test_a_dns_answer_mixing_public_and_private_addresses_is_refused(
    image_server: Servers,
) -> None:
    server = image_server("127.0.0.1")
    dns = fake_dns({"mixed.test": ["93.184.216.34", "127.0.0.1"], "inner.test": ["10.0.0.7"]})
    async with ContentFetcher(LOCAL.with_roots(), resolver=dns) as fetcher:
        assert await outcome(fetcher, f"http://inner.test:{server.port}/ok") == "forbidden"
    strict = FetchPolicy(deadline_s=1.0)
    async with ContentFetcher(strict, resolver=dns) as fetcher:
        assert await outcome(fetcher, f"http://mixed.test:{server.port}/ok") == "forbidden"
    assert server.requests == []


async def test_the_vetted_address_is_connected_to_with_the_host_name_kept(
    image_server: Servers,
) -> None:
    """DNS rebinding: the name is resolved once per connection and that answer is used; the
    second answer (a private address) never gets a request. Host carries the name."""
    good, secret = image_server("127.0.0.2"), image_server("127.0.0.1")
    secret_port = secret.port
    calls: list[str] = []
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address(a) for a in next(answers)]

    policy = FetchPolicy(allow_networks=("127.0.0.2/32",), deadline_s=2.0)
    async with ContentFetcher(policy, resolver=rebinding) as fetcher:
        assert await outcome(fetcher, f"http://images.test:{good.port}/ok") == BODY
    async with ContentFetcher(policy, resolver=rebinding) as fetcher:
        assert await outcome(fetcher, f"http://images.test:{secret_port}/ok") == "forbidden"
    assert calls == ["images.test", "images.test"]
    assert good.requests == [("/ok", f"images.test:{good.port}")]
    assert secret.requests == []


async def test_https_keeps_sni_and_certificate_checks_on_the_name(image_server: Servers) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("images.test").configure_cert(server_tls)
    server = image_server("127.0.0.2", tls=server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    dns = fake_dns({"images.test": ["127.0.0.2"], "other.test": ["127.0.0.2"]})
    policy = FetchPolicy(allow_networks=("127.0.0.2/32",), deadline_s=2.0)
    async with ContentFetcher(policy, resolver=dns, ssl_context=client_tls) as fetcher:
        assert await outcome(fetcher, f"https://images.test:{server.port}/ok") == BODY
        # the certificate names images.test only: a different name fails verification
        assert await outcome(fetcher, f"https://other.test:{server.port}/ok") == "unreachable"
    assert server.server_names[0] == "images.test"
    assert server.requests == [("/ok", f"images.test:{server.port}")]


async def test_allowed_hosts_are_exempt_but_metadata_never_is(image_server: Servers) -> None:
    server = image_server("127.0.0.1")
    dns = fake_dns({"dev.local": ["127.0.0.1"], "meta.local": ["169.254.169.254"]})
    policy = FetchPolicy(allow_hosts=("dev.local", "meta.local"), deadline_s=2.0)
    async with ContentFetcher(policy, resolver=dns) as fetcher:
        assert await outcome(fetcher, f"http://dev.local:{server.port}/ok") == BODY
        assert await outcome(fetcher, "http://meta.local/latest/meta-data/") == "forbidden"
        assert await outcome(fetcher, server.url()) == "forbidden"  # the address itself: not
    assert len(server.requests) == 1


async def test_no_proxy_from_the_environment_and_no_decompression(
    image_server: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, proxy = image_server("127.0.0.1"), image_server("127.0.0.2")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url("/"))
    policy = FetchPolicy(allow_networks=("127.0.0.1/32",), max_bytes=1_000, deadline_s=2.0)
    async with ContentFetcher(policy) as fetcher:
        assert await outcome(fetcher, server.url("/gzip")) == GZIPPED  # raw, still small
    assert proxy.requests == [] and [p for p, _ in server.requests] == ["/gzip"]


# --- caps, deadline, reasons -------------------------------------------------------------------


async def test_fetch_many_returns_bytes_or_reason_per_pin(
    tmp_path: Path, image_server: Servers
) -> None:
    server = image_server()
    small = tmp_path / "small.png"
    small.write_bytes(b"s" * 10)
    (tmp_path / "large.png").write_bytes(b"l" * 2_000)
    inline = base64.b64encode(b"inline").decode()
    pins = {
        "file": small.as_uri(),
        "file_large": (tmp_path / "large.png").as_uri(),
        "file_missing": (tmp_path / "nope.png").as_uri(),
        "http": server.url("/ok"),
        "http_big": server.url("/big"),
        "http_chunked_big": server.url("/chunked-big"),
        "http_404": server.url("/missing"),
        "http_slow": server.url("/slow?s=4"),
        "http_trickle": server.url("/trickle"),
        "refused": "http://127.0.0.1:9/x",
        "idna": "http://☃.com/x",
        "bad_port": "http://example.com:99999/x",
    }
    events = [pin(k, image_uri=v) for k, v in pins.items()]
    events += [pin("inline", image_b64=inline), pin("inline_bad", image_b64="%%%notbase64"),
               pin("inline_big", image_b64=base64.b64encode(b"i" * 1_001).decode())]  # fmt: skip
    async with ContentFetcher(LOCAL.with_roots(str(tmp_path))) as fetcher:
        results = await fetcher.fetch_many(events)
    got = {e.pin_id: (r.reason if isinstance(r, ContentError) else r)
           for e, r in zip(events, results, strict=True)}  # fmt: skip
    assert got == {
        "file": b"s" * 10, "file_large": "too_large", "file_missing": "unreachable",
        "http": BODY, "http_big": "too_large", "http_chunked_big": "too_large",
        "http_404": "unreachable", "http_slow": "timeout", "http_trickle": "timeout",
        "refused": "unreachable", "idna": "unsupported_uri", "bad_port": "unsupported_uri",
        "inline": b"inline", "inline_bad": "bad_base64", "inline_big": "too_large",
    }  # fmt: skip
    for error in results:
        if isinstance(error, ContentError):  # no port, status or errno oracle
            assert error.stage == "fetch" and error.detail == DETAILS[error.reason]


async def test_one_deadline_covers_dns_redirects_and_body(image_server: Servers) -> None:
    server = image_server()

    async def slow_dns(host: str, port: int) -> list[IPAddress]:
        await asyncio.sleep(5)
        return [ipaddress.ip_address("127.0.0.1")]

    policy = FetchPolicy(allow_networks=("127.0.0.1/32",), deadline_s=0.6)
    # three hops of 0.3 s each: every hop is within the deadline, the chain is not (each target
    # is quoted, or the outer query would swallow the inner hop's parameters)
    hop3 = server.url("/redirect?s=0.3&to=/ok")
    hop2 = server.url(f"/redirect?s=0.3&to={quote(hop3, safe='')}")
    started = time.monotonic()
    async with ContentFetcher(policy, resolver=slow_dns) as fetcher:
        assert await outcome(fetcher, "http://slow-dns.test/ok") == "timeout"
    async with ContentFetcher(policy) as fetcher:
        hop1 = server.url(f"/redirect?s=0.3&to={quote(hop2, safe='')}")
        assert await outcome(fetcher, hop1) == "timeout"
    assert time.monotonic() - started < 5  # both gave up at their deadline, not at the end


@pytest.mark.parametrize(
    "uri",
    ["ftp://example.com/a.png", "gopher://x/", "javascript:alert(1)", "data:image/png;base64,AA",
     "s3://bucket/key", "zip://a.png::file:///tmp/x.zip", "http://", "https:///x", "http://[::1/",
     "http://a..b/", "http://xn--/", "noscheme.png", "/etc/passwd", "file://otherhost/etc/passwd",
     "file:///tmp/a%00b", "file:relative/path"],
)  # fmt: skip
async def test_malformed_and_disallowed_uris_are_typed_errors(uri: str) -> None:
    async with ContentFetcher(FetchPolicy(deadline_s=1.0), resolver=fake_dns({})) as fetcher:
        assert await outcome(fetcher, uri) in ("unsupported_uri", "unreachable", "forbidden")


URI_PARTS = st.tuples(
    st.sampled_from(["http", "https", "HTTP", "file", "s3", "ftp", "", "javascript", "h\x00"]),
    st.sampled_from(["://", ":", ":///", "//", "://user:pw@"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["", ":80", ":0", ":65536", ":-1", ":abc", ":99999999999"]),
    st.text(max_size=30),
)


@settings(derandomize=True, database=None, deadline=None, max_examples=200)
@given(st.one_of(st.text(max_size=80), URI_PARTS.map("".join)))
def test_any_uri_string_is_bytes_or_a_content_error(uri: str) -> None:
    """Whatever a producer puts in `image_uri`, the fetcher answers with a ContentError (never
    another exception type that would escape the batch). No DNS: the resolver knows no name."""

    async def run() -> None:
        async with ContentFetcher(FetchPolicy(deadline_s=1.0), resolver=fake_dns({})) as fetcher:
            result = await outcome(fetcher, uri)
        assert result in ("unsupported_uri", "forbidden", "unreachable"), result

    asyncio.run(run())


# --- file:// roots -----------------------------------------------------------------------------


async def test_file_uris_are_read_only_from_regular_files_under_the_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "a.png").write_bytes(b"inside")
    (outside / "secret.png").write_bytes(b"secret")
    (root / "sub").mkdir()
    os.symlink(outside / "secret.png", root / "escape.png")
    os.symlink(root / "a.png", root / "sub" / "alias.png")
    os.symlink("/dev/zero", root / "zero.png")
    os.mkfifo(root / "fifo.png")  # no writer: a blocking open would hang forever
    linked_root = tmp_path / "linked-root"
    os.symlink(root, linked_root)
    policy = FetchPolicy(file_roots=(str(linked_root),), deadline_s=2.0)
    cases = {
        "a.png": b"inside",
        "sub/alias.png": b"inside",
        "escape.png": "forbidden",
        "zero.png": "forbidden",
        "fifo.png": "forbidden",
        "sub": "forbidden",
        "../outside/secret.png": "forbidden",
        "sub/%2e%2e/%2e%2e/outside/secret.png": "forbidden",
        "missing.png": "unreachable",
    }
    async with ContentFetcher(policy) as fetcher:
        for name, expected in cases.items():
            assert await outcome(fetcher, f"file://{linked_root}/{name}") == expected, name
        assert await outcome(fetcher, (outside / "secret.png").as_uri()) == "forbidden"
    async with ContentFetcher(FetchPolicy()) as fetcher:  # no roots: no local file at all
        assert await outcome(fetcher, (root / "a.png").as_uri()) == "forbidden"


async def test_blocking_reads_do_not_use_the_default_executor(tmp_path: Path) -> None:
    """The store writes' executor can be fully busy (or wedged): fetches still complete, and
    special files never occupy a thread of any pool."""
    (tmp_path / "a.png").write_bytes(b"img")
    for i in range(8):
        os.mkfifo(tmp_path / f"fifo{i}")
    release = threading.Event()
    busy = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(busy)
    blocked = loop.run_in_executor(None, release.wait)
    try:
        policy = FetchPolicy(file_roots=(str(tmp_path),), threads=1, deadline_s=2.0)
        async with ContentFetcher(policy) as fetcher:
            fifos = [pin(f"f{i}", image_uri=(tmp_path / f"fifo{i}").as_uri()) for i in range(8)]
            results = await fetcher.fetch_many(
                [*fifos, pin("a", image_uri=(tmp_path / "a.png").as_uri())]
            )
        assert [getattr(r, "reason", r) for r in results] == ["forbidden"] * 8 + [b"img"]
    finally:
        release.set()
        await blocked
        busy.shutdown()


# --- the synchronous entry point (backfill, API helpers) ---------------------------------------


def test_blocking_fetcher_is_the_same_path(tmp_path: Path, image_server: Servers) -> None:
    server, secret = image_server("127.0.0.2"), image_server("127.0.0.1")
    (tmp_path / "a.png").write_bytes(b"img")
    policy = FetchPolicy(
        allow_networks=("127.0.0.2/32",), file_roots=(str(tmp_path),), max_bytes=1_000,
        deadline_s=1.5,
    )  # fmt: skip
    with BlockingFetcher(policy) as fetch:
        assert fetch((tmp_path / "a.png").as_uri()) == b"img"
        assert fetch(server.url("/ok")) == BODY
        for path, reason in [("/chunked-big", "too_large"), ("/trickle", "timeout")]:
            with pytest.raises(ContentError) as info:
                fetch(server.url(path))
            assert info.value.reason == reason
        with pytest.raises(ContentError) as refused:
            fetch(secret.url())
        assert refused.value.reason == "forbidden"
    assert load_image_bytes((tmp_path / "a.png").as_uri(), policy) == b"img"
    assert secret.requests == []


def test_content_store_is_content_addressed_and_loadable(tmp_path: Path) -> None:
    store = ContentStore(str(tmp_path / "content"))
    first = store.put(b"image-bytes")
    again = store.put(b"image-bytes")
    other = store.put(b"other")
    assert first == again != other
    assert first.startswith("file://")
    policy = FetchPolicy(file_roots=(str(tmp_path / "content"),))
    assert load_image_bytes(first, policy) == b"image-bytes"
    assert len(list((tmp_path / "content").rglob("*"))) == 4  # two shard dirs + two files
