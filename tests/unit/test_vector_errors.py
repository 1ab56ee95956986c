import grpc
import pytest
from pymilvus.exceptions import ConnectError, MilvusException

from vector_store.errors import is_unavailable


@pytest.mark.parametrize(
    "exc",
    [
        MilvusException(
            code=2,
            message="Fail connecting to server on 127.0.0.1:1, illegal connection params or "
            "server unavailable",
        ),
        ConnectError(message="boom"),
        ConnectionRefusedError(),
        TimeoutError(),
        MilvusException(code=1, message="<_InactiveRpcError StatusCode.UNAVAILABLE>"),
        # what pymilvus raises once its own retries within the call deadline run out
        MilvusException(code=grpc.StatusCode.UNAVAILABLE, message="[search] Retry timeout: 3s"),
        MilvusException(code=grpc.StatusCode.DEADLINE_EXCEEDED, message="deadline"),
    ],
)
def test_connection_failures_are_retryable(exc: BaseException) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        MilvusException(code=100, message="alias 'x' does not exist"),
        MilvusException(code=1100, message="invalid parameter: dim mismatch"),
        MilvusException(code=65535, message="cannot parse expression"),
        ValueError("bad"),
        MilvusException(code=grpc.StatusCode.INVALID_ARGUMENT, message="bad request"),
    ],
)
def test_request_errors_are_not_retryable(exc: BaseException) -> None:
    assert not is_unavailable(exc)
