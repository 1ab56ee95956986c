"""FetchPolicy: what an image URI may make this process read, and how much, and for how long.

One frozen value, built from settings by `pinclip` (or `WorkerConfig`) and handed to the one
fetcher the worker, the backfill and the API share. Secure by default: http(s) to public
addresses only, `file://` only under roots the operator names, no other scheme.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Any, Protocol

from streams.content.addresses import Network, parse_networks

#: Schemes an operator may enable. http(s) go through the address policy; `file` through the
#: root check; the object stores through fsspec (their endpoint is the deployer's own
#: configuration, but enabling one lets any event read any object those credentials can read).
#: fsspec's other protocols (ftp, sftp, smb, webdav, zip, chained `a::b` URLs ...) would open
#: network connections or local archives behind the policy's back, so they cannot be enabled.
KNOWN_SCHEMES = frozenset({"http", "https", "file", "s3", "gs", "gcs", "az", "abfs"})
FSSPEC_SCHEMES = KNOWN_SCHEMES - {"http", "https", "file"}

DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_DEADLINE_S = 5.0


def split_list(text: str) -> tuple[str, ...]:
    """`"a, b,,c"` → `("a", "b", "c")`: how list settings are written in the environment."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


class FetchSettings(Protocol):
    """The settings a FetchPolicy is read from: `pinclip.settings.Settings` has them (mypy checks
    it where pinclip passes its Settings in; streams never imports pinclip)."""

    @property
    def fetch_schemes(self) -> str: ...
    @property
    def fetch_file_roots(self) -> str: ...
    @property
    def fetch_allow_networks(self) -> str: ...
    @property
    def fetch_allow_hosts(self) -> str: ...
    @property
    def max_image_bytes(self) -> int: ...
    @property
    def image_fetch_timeout_s(self) -> float: ...
    @property
    def fetch_max_redirects(self) -> int: ...
    @property
    def fetch_max_concurrency(self) -> int: ...
    @property
    def fetch_threads(self) -> int: ...


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for fetching one image. Every field has a safe default.

    - `schemes`: URI schemes allowed (inline base64 images are always allowed).
    - `file_roots`: directories `file://` URIs may point into (resolved, symlinks followed);
      empty means no local file can be read.
    - `allow_networks`: CIDRs exempt from the address policy (local development, e.g.
      `127.0.0.1/32` for a test image server). Cloud-metadata addresses stay refused.
    - `allow_hosts`: host names whose resolved addresses are exempt the same way.
    - `max_bytes`: byte cap, enforced while streaming.
    - `deadline_s`: one total deadline per fetch: DNS + connect + every redirect + body.
    - `max_redirects`: redirects followed per fetch (each hop is checked again).
    - `max_concurrency`: fetches in flight per fetcher.
    - `threads`: size of each of the fetcher's own thread pools (DNS, blocking reads).
    """

    schemes: tuple[str, ...] = ("http", "https", "file")
    file_roots: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    deadline_s: float = DEFAULT_DEADLINE_S
    max_redirects: int = 3
    max_concurrency: int = 32
    threads: int = 4

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, at construction
        set_(self, "schemes", tuple(s.lower() for s in self.schemes))
        set_(self, "file_roots", tuple(str(r) for r in self.file_roots))
        set_(self, "allow_hosts", tuple(h.lower().rstrip(".") for h in self.allow_hosts))
        unknown = set(self.schemes) - KNOWN_SCHEMES
        if unknown:
            raise ValueError(f"fetch schemes {sorted(unknown)} cannot be enabled")
        if self.max_bytes < 1 or self.deadline_s <= 0 or self.max_redirects < 0:
            raise ValueError("fetch max_bytes and deadline_s must be positive")
        if self.max_concurrency < 1 or self.threads < 1:
            raise ValueError("fetch max_concurrency and threads must be at least 1")
        for spec in self.allow_networks:  # a bad CIDR fails at start-up, not per fetch
            try:
                parse_networks([spec])
            except ValueError:
                message = f"fetch allow_networks: {spec!r} is not an address or CIDR"
                raise ValueError(message) from None

    @cached_property
    def networks(self) -> tuple[Network, ...]:
        return parse_networks(self.allow_networks)

    def with_roots(self, *roots: str) -> FetchPolicy:
        """The same policy with more `file://` roots (e.g. the worker's own content store)."""
        extra = tuple(str(r) for r in roots if str(r) not in self.file_roots)
        return replace(self, file_roots=self.file_roots + extra)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FetchPolicy:
        tuples = ("schemes", "file_roots", "allow_networks", "allow_hosts")
        fixed: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in values.items()}
        return cls(**fixed)

    @classmethod
    def from_settings(cls, settings: FetchSettings) -> FetchPolicy:
        """From `pinclip.settings.Settings` (passed in: streams never reads the environment)."""
        return cls(
            schemes=split_list(settings.fetch_schemes),
            file_roots=split_list(settings.fetch_file_roots),
            allow_networks=split_list(settings.fetch_allow_networks),
            allow_hosts=split_list(settings.fetch_allow_hosts),
            max_bytes=settings.max_image_bytes,
            deadline_s=settings.image_fetch_timeout_s,
            max_redirects=settings.fetch_max_redirects,
            max_concurrency=settings.fetch_max_concurrency,
            threads=settings.fetch_threads,
        )
