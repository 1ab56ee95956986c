import pytest

from vector_store.index import IndexConfig


def test_hnsw_sends_build_params_the_server_requires() -> None:
    config = IndexConfig(kind="HNSW", hnsw_m=24, hnsw_ef_construction=300, hnsw_ef_search=50)
    assert config.build_params() == {"M": 24, "efConstruction": 300}
    assert config.search_params(10) == {"metric_type": "IP", "params": {"ef": 50}}


def test_hnsw_ef_is_raised_to_k() -> None:
    # The server rejects a query whose ef is below its limit.
    assert IndexConfig(hnsw_ef_search=16).search_params(100)["params"]["ef"] == 100


def test_ivf_nprobe_never_exceeds_nlist() -> None:
    config = IndexConfig(kind="IVF_FLAT", ivf_nlist=16, ivf_nprobe=64)
    assert config.build_params() == {"nlist": 16}
    assert config.search_params(10)["params"] == {"nprobe": 16}


def test_flat_has_no_params() -> None:
    assert IndexConfig(kind="FLAT").build_params() == {}
    assert IndexConfig(kind="FLAT").search_params(5) == {"metric_type": "IP", "params": {}}


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "IVF_PQ"},  # fails in a background thread on milvus-lite
        {"kind": "DISKANN"},
        {"hnsw_m": 0},
        {"ivf_nprobe": 0},
    ],
)
def test_unsupported_or_invalid_configs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        IndexConfig(**bad)  # type: ignore[arg-type]
