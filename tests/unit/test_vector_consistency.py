import pytest

from vector_store import VectorStore


@pytest.mark.parametrize("level", ["strong", "Eventual", ""])
def test_unknown_consistency_level_is_refused_before_connecting(level: str) -> None:
    # The URI is unreachable on purpose: the check must come first.
    with pytest.raises(ValueError, match="consistency"):
        VectorStore("http://127.0.0.1:9", consistency=level)
