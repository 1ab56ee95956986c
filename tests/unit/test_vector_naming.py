import pytest

from vector_store.naming import VersionNaming


def test_collection_names_round_trip_to_versions() -> None:
    naming = VersionNaming(prefix="pins_v", alias="pins")
    assert naming.collection(7) == "pins_v7"
    assert naming.version_of("pins_v7") == 7
    assert naming.version_of("pins_v12") == 12


@pytest.mark.parametrize("name", ["pins", "pins_v", "pins_vx", "pins_v07", "other_v3", "pins_v3b"])
def test_foreign_or_malformed_names_are_not_versions(name: str) -> None:
    assert VersionNaming().version_of(name) is None


def test_versions_among_a_server_listing_are_ours_and_sorted() -> None:
    naming = VersionNaming(prefix="t1_v", alias="t1_alias")
    listing = ["t1_v10", "pins_v1", "t1_v2", "t2_v1", "t1_v", "t1_v1"]
    assert naming.versions_among(listing) == [1, 2, 10]


def test_version_zero_and_negative_are_refused() -> None:
    with pytest.raises(ValueError):
        VersionNaming().collection(0)


@pytest.mark.parametrize(
    ("prefix", "alias"), [("1pins_v", "pins"), ("pins-v", "pins"), ("pins_v", "a b")]
)
def test_names_milvus_would_reject_are_refused_early(prefix: str, alias: str) -> None:
    with pytest.raises(ValueError):
        VersionNaming(prefix=prefix, alias=alias)


def test_alias_that_looks_like_a_version_is_refused() -> None:
    with pytest.raises(ValueError):
        VersionNaming(prefix="pins_v", alias="pins_vlive")
