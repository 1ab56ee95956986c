from datetime import UTC, datetime, timedelta

from vector_store.lifecycle import FillCheck, drop_problems, droppable_versions, switch_problems

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def check(count: int, expected: int = 100, loaded: bool = True, indexed: bool = True) -> FillCheck:
    return FillCheck(
        version=2, count=count, expected_count=expected, loaded=loaded, indexed=indexed
    )


def test_fill_check_passes_at_or_above_expected_count() -> None:
    assert check(100).ok
    assert check(130).ok  # live writes keep arriving during a backfill


def test_fill_check_lists_every_problem() -> None:
    problems = check(99, loaded=False, indexed=False).problems
    assert len(problems) == 3
    assert "99 rows" in problems[0]


def test_switch_refused_when_the_fill_check_fails() -> None:
    assert switch_problems(2, live=1, check=check(10), target_count=10)
    assert switch_problems(2, live=1, check=check(100), target_count=100) == []


def test_switch_refuses_a_check_of_another_version() -> None:
    assert switch_problems(3, live=1, check=check(100), target_count=100)


def test_switch_without_check_refuses_an_empty_target_while_something_is_live() -> None:
    assert switch_problems(2, live=1, check=None, target_count=0)
    assert switch_problems(2, live=1, check=None, target_count=5) == []


def test_first_switch_may_point_at_an_empty_collection() -> None:
    assert switch_problems(1, live=None, check=None, target_count=0) == []


def test_live_version_is_never_droppable() -> None:
    assert drop_problems(2, live=2, retired_at=None, now=NOW, grace=timedelta(0))


def test_retired_version_waits_out_the_grace_period() -> None:
    assert drop_problems(1, live=2, retired_at=NOW - HOUR / 2, now=NOW, grace=HOUR)
    assert drop_problems(1, live=2, retired_at=NOW - HOUR, now=NOW, grace=HOUR) == []


def test_never_live_version_has_no_grace() -> None:
    assert drop_problems(3, live=2, retired_at=None, now=NOW, grace=HOUR) == []


def test_droppable_versions_keeps_live_recent_and_filling_versions() -> None:
    retired = {1: NOW - 3 * HOUR, 2: NOW - HOUR / 4}
    # 1: retired long ago -> drop; 2: inside grace; 3: live; 4: being filled
    assert droppable_versions([1, 2, 3, 4], live=3, retired_at=retired, now=NOW, grace=HOUR) == [1]


def test_abandoned_fill_is_dropped_only_on_request() -> None:
    kept = droppable_versions([3, 4], live=3, retired_at={}, now=NOW, grace=HOUR)
    assert kept == []
    dropped = droppable_versions(
        [3, 4], live=3, retired_at={}, now=NOW, grace=HOUR, keep_newer_than_live=False
    )
    assert dropped == [4]


def test_nothing_is_dropped_before_anything_went_live() -> None:
    assert droppable_versions([1, 2], live=None, retired_at={}, now=NOW, grace=HOUR) == []


def test_rolled_back_version_is_dropped_after_grace_even_though_newer_than_live() -> None:
    retired = {2: NOW - 2 * HOUR}  # v2 went live, then the alias rolled back to v1
    assert droppable_versions([1, 2], live=1, retired_at=retired, now=NOW, grace=HOUR) == [2]
    recent = {2: NOW - HOUR / 2}
    assert droppable_versions([1, 2], live=1, retired_at=recent, now=NOW, grace=HOUR) == []
