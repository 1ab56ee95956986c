"""Blocking reads: `file://` under configured roots, and fsspec object stores. Run in a pool.

A `file://` URI names a path; the policy admits it only if its real path (symlinks resolved) lies
under a configured root, and only a regular file is read: it is opened non-blocking and checked
with `fstat` before a single byte is read, so a FIFO, a device or a directory can never block a
thread or be read. The opened descriptor's own path is checked again (where `/proc` shows it),
so a symlink swapped in between the check and the open does not escape the roots either.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

import fsspec
import structlog

from streams.content.reasons import ContentError

log = structlog.get_logger(__name__)

_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
)


def file_uri_path(uri: str) -> str:
    """`file:///a/b%20c.png` (or `file://localhost/...`) → `/a/b c.png`; ContentError if not."""
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ContentError("unsupported_uri")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise ContentError("unsupported_uri")
    return path


def within_roots(path: str, roots: Iterable[str]) -> bool:
    """True when `path` (already resolved) is one of `roots` (resolved here) or inside one."""
    for root in roots:
        real_root = os.path.realpath(root)
        if path == real_root or path.startswith(real_root.rstrip(os.sep) + os.sep):
            return True
    return False


def read_file_under_roots(path: str, roots: Iterable[str], max_bytes: int) -> bytes:
    """The bytes of the regular file at `path`, if the policy's roots allow it."""
    roots = tuple(roots)
    real = os.path.realpath(path)
    if not within_roots(real, roots):
        raise ContentError("forbidden")
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as exc:  # missing, permission, a symlink swapped in (O_NOFOLLOW) ...
        log.info("content_fetch_failed", scheme="file", cause=type(exc).__name__)
        raise ContentError("unreachable") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ContentError("forbidden")  # FIFO, device, socket, directory: never read
        opened = _descriptor_path(fd)
        if opened is not None and not within_roots(opened, roots):
            raise ContentError("forbidden")
        if os.fstat(fd).st_size > max_bytes:
            raise ContentError("too_large")
        return _read_capped(fd, max_bytes)
    finally:
        os.close(fd)


def _descriptor_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc (not Linux): the realpath check and O_NOFOLLOW stand alone
        return None


def _read_capped(fd: int, max_bytes: int) -> bytes:
    data = bytearray()
    while True:
        chunk = os.read(fd, min(1 << 20, max_bytes + 1 - len(data)))
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > max_bytes:  # the file grew while we read it
            raise ContentError("too_large")


def read_fsspec(uri: str, max_bytes: int) -> bytes:
    """An object-store URI (`s3://bucket/key`) through fsspec, capped at `max_bytes`."""
    if "::" in uri:  # fsspec URL chaining (zip::, simplecache:: ...) is never an image URI
        raise ContentError("unsupported_uri")
    try:
        with fsspec.open(uri, "rb") as handle:
            data: bytes = handle.read(max_bytes + 1)
    except ImportError:  # e.g. s3 without s3fs installed
        raise ContentError("unsupported_uri") from None
    except (OSError, ValueError) as exc:
        log.info("content_fetch_failed", scheme=uri.split(":", 1)[0], cause=type(exc).__name__)
        raise ContentError("unreachable") from None
    if len(data) > max_bytes:
        raise ContentError("too_large")
    return data
