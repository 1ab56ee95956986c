"""Exception types callers act on, and the rule that sorts Milvus failures into them.

Callers (the stream worker, the backfill) need one question answered: retry with backoff, or
give up and dead-letter? `VectorStoreUnavailable` means "retry"; everything else does not.
"""

from __future__ import annotations

# Milvus status codes / gRPC phrases that mean "the service is not reachable right now".
# 2: pymilvus "Fail connecting to server"; 8: rate limited; 9: writes denied (quota).
_RETRYABLE_CODES = frozenset({2, 8, 9})
_RETRYABLE_GRPC_STATUSES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})
_RETRYABLE_PHRASES = (
    "fail connecting",
    "server unavailable",
    "statuscode.unavailable",
    "deadline_exceeded",
    "deadline exceeded",
    "connection refused",
    "failed to connect",
    "socket closed",
    "rate limit",
    "retry timeout",
)


class VectorStoreError(Exception):
    """Base of everything vector_store raises on purpose."""


class VectorStoreUnavailable(VectorStoreError):
    """Milvus cannot be reached (or refuses load for now): retry with backoff, do not drop data."""


class LiteDirectoryLocked(VectorStoreError):
    """Another process has this milvus-lite directory open: milvus-lite serves one process per
    directory. Not an outage — retrying does not help until that process exits."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"the milvus-lite directory {path} is open in another process "
            "(milvus-lite serves one process per directory)"
        )
        self.path = path


class UnknownVersion(VectorStoreError):
    """The requested model version has no collection (never created, or already dropped)."""


class NoLiveVersion(VectorStoreError):
    """A read went through the alias before any version was made live."""


class SwitchRefused(VectorStoreError):
    """The alias was not moved: the target collection failed verification."""


class DropRefused(VectorStoreError):
    """Dropping this version would break readers (it is live, or still inside its grace period)."""


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` (from pymilvus or grpc) means the service is unreachable, not a bad request.

    Decided on the code and message text because pymilvus raises the same `MilvusException`
    class for both kinds; the phrases are the ones seen from pymilvus 3.0.2 / grpc.
    """
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    kind = type(exc).__name__
    if kind in {"ConnectError", "MilvusUnavailableException", "ConnectionNotExistException"}:
        return True
    code = getattr(exc, "code", None)
    if callable(code):  # a raw grpc.RpcError: code() is a grpc.StatusCode
        code = code()
    if isinstance(code, int) and code in _RETRYABLE_CODES:
        return True
    # After its own retries run out, pymilvus re-raises with the gRPC status as the code.
    if getattr(code, "name", None) in _RETRYABLE_GRPC_STATUSES:
        return True
    text = f"{kind} {exc}".lower()
    return any(phrase in text for phrase in _RETRYABLE_PHRASES)
