"""tools/select_settings.py, the held-out protocol's per-family pick (bench/run_evals.sh)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from select_settings import pick  # noqa: E402


def row(delta, speedup):
    return {"delta_points": delta, "speedup": speedup}


def test_pick_is_the_fastest_within_budget_and_a_loss_of_exactly_the_budget_counts():
    exact = row(100 * (0.76 - 0.77), 1.4)  # one document in 100: -1.0000000000000009 in floating point
    assert pick([exact, row(-1.01, 2.0), row(0.0, 1.1)], 1.0) is exact
    assert pick([row(-1.01, 2.0)], 1.0) is None
    tie_fast = row(-0.5, 1.5)
    assert pick([row(-0.9, 1.5), tie_fast], 1.0) is tie_fast  # equal speed: the more accurate
