"""The worker's progress line: counts since start, rate since the last line, lag, versions —
and silence when idle and caught up."""

from __future__ import annotations

from streams.heartbeat import Snapshot, progress_fields


def snap(at: float, embedded: int, dead: int = 0, repins: int = 0, lag: int = 0) -> Snapshot:
    counts = {"pins_in": embedded + dead, "repins_in": repins, "embedded": embedded, "dead": dead}
    return Snapshot(at, counts, lag, (1,))


def test_the_line_has_totals_rate_lag_and_model_versions() -> None:
    fields = progress_fields(snap(0.0, 100), snap(10.0, 400, dead=3, repins=50, lag=12))
    assert fields == {
        "embedded": 400,
        "embedded_per_s": 30.0,
        "dead_lettered": 3,
        "repins": 50,
        "lag": 12,
        "model_versions": [1],
    }


def test_the_first_line_has_no_rate_yet() -> None:
    fields = progress_fields(None, snap(5.0, 20))
    assert fields is not None and fields["embedded"] == 20 and fields["embedded_per_s"] is None


def test_an_idle_caught_up_worker_stays_quiet() -> None:
    assert progress_fields(snap(0.0, 100, repins=5), snap(10.0, 100, repins=5)) is None
    assert progress_fields(None, snap(0.0, 0)) is None


def test_a_waiting_backlog_is_reported_even_without_progress() -> None:
    fields = progress_fields(snap(0.0, 100), snap(10.0, 100, lag=500))
    assert fields is not None and fields["lag"] == 500 and fields["embedded_per_s"] == 0.0


def test_versions_show_a_candidate_beside_the_live_model() -> None:
    current = Snapshot(10.0, {"embedded": 1}, 0, (1, 2))
    fields = progress_fields(None, current)
    assert fields is not None and fields["model_versions"] == [1, 2]
