import pytest

from vector_store.milvus_io import backend_of


@pytest.mark.parametrize(
    ("uri", "backend"),
    [
        ("var/milvus.db", "lite"),
        ("/tmp/x/milvus.db", "lite"),
        ("http://127.0.0.1:19530", "server"),
        ("https://milvus.example:443", "server"),
        ("tcp://10.0.0.1:19530", "server"),
    ],
)
def test_local_paths_are_lite_and_urls_are_servers(uri: str, backend: str) -> None:
    assert backend_of(uri) == backend
