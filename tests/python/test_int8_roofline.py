"""tools/int8_roofline.py: issue 19's lower bound per shape, against hand-computed cases."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from int8_roofline import Shape, best_rate_ops_per_us, gemm_us, lower_bound_ms, read_probe  # noqa: E402

PROBE = """\
   32     4     4  u8s8       2.0  bf16       9.9  f32      99.0 us
  128     4     4  u8s8       4.0  bf16       9.9  f32      99.0 us
   32     4     8  u8s8       8.0  bf16       9.9  f32      99.0 us
  128     4     8  u8s8      16.0  bf16       9.9  f32      99.0 us
   32     8     4  u8s8      10.0  bf16       9.9  f32      99.0 us
  128     8     4  u8s8      20.0  bf16       9.9  f32      99.0 us
a line that is not a cell
"""


@pytest.fixture
def probe(tmp_path):
    path = tmp_path / "probe.txt"
    path.write_text(PROBE)
    return read_probe([path])


def test_probe_cells_are_the_int8_column(probe):
    assert len(probe) == 6
    assert probe[(128, 4, 8)] == 16.0


def test_several_probe_runs_keep_each_cells_fastest(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text(PROBE)
    second.write_text("   32     4     4  u8s8       1.5  bf16      20.0  f32      99.0 us\n")
    assert read_probe([first, second])[(32, 4, 4)] == 1.5
    assert read_probe([first, second], "bf16")[(32, 4, 4)] == 9.9
    assert read_probe([first, second])[(128, 4, 4)] == 4.0


def test_gemm_time_is_the_cell_or_the_next_larger_cells_rate(probe):
    assert gemm_us(probe, 128, 4, 4) == 4.0
    assert gemm_us(probe, 64, 4, 4) == 4.0 * 64 / 128    # between cells: the 128-row cell's (faster) rate
    assert gemm_us(probe, 512, 4, 4) == 4.0 * 4          # past the last cell: linear from 128 rows
    assert gemm_us(probe, 8, 4, 4) == 2.0 * 8 / 32       # below the first cell: scaled down from it


def test_best_rate_is_the_fastest_cell(probe):
    # 128 x 4 x 4 in 4 us: 2 * 2048 / 4 = 1024 operations per microsecond; no other cell is faster.
    assert best_rate_ops_per_us(probe) == 1024.0


def test_bound_adds_the_four_weight_shapes_per_layer_and_attention_at_the_best_rate(probe):
    shape = Shape(layers=2, hidden=4, ffn=8)
    bound = lower_bound_ms(shape, probe, seq=32, batch=4)   # 128 rows
    # Per layer: four 4 x 4 products (4 us each), 4 x 8 (16 us), 8 x 4 (20 us) = 52 us; two layers.
    assert bound["weights_ms"] == pytest.approx(2 * 52 / 1e3)
    # Q.K^T and P.V: 2 products x 2 ops x batch 4 x 32^2 x hidden 4 per layer, at 1024 ops/us.
    assert bound["attention_ms"] == pytest.approx(2 * 2 * 2 * 4 * 32 * 32 * 4 / 1024 / 1e3)
    assert bound["bound_ms"] == pytest.approx(bound["weights_ms"] + bound["attention_ms"])
    # Everything at 1024 ops/us: 2 layers x 2 ops x 128 rows x (4 x 16 + 2 x 32) weights, plus attention.
    weight_ops = 2 * 2 * 128 * (4 * 4 * 4 + 2 * 4 * 8)
    assert bound["flat_bound_ms"] == pytest.approx((weight_ops / 1024) / 1e3 + bound["attention_ms"])


def test_a_shape_the_probe_never_measured_is_an_error(probe):
    with pytest.raises(SystemExit, match="no 16 x 16"):
        gemm_us(probe, 32, 16, 16)
