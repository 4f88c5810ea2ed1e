"""The paper's step schedule (Sec. 4.1): 0.1, /10 at 64k and 96k, stop at 160k; data order and segmentation."""

import numpy as np
import pytest
from keras import ops

from ran.train.data import batch_indices, pass_permutation, segment_ends, steps_per_pass
from ran.train.schedule import StepDecay, decay_boundaries

PAPER_RATES = [(0, 0.1), (63999, 0.1), (64000, 0.01), (95999, 0.01), (96000, 0.001), (159999, 0.001)]


@pytest.fixture(scope="module")
def schedule():
    return StepDecay(0.1, decay_boundaries(160000, [0.4, 0.6]), 0.1)


def test_paper_boundaries():
    assert decay_boundaries(160000, [0.4, 0.6]) == [64000, 96000]
    assert decay_boundaries(16000, [0.4, 0.6]) == [6400, 9600]


@pytest.mark.parametrize(("step", "rate"), PAPER_RATES)
def test_rate_at_boundary_iterations(schedule, step, rate):
    assert schedule.value_at(step) == pytest.approx(rate, rel=1e-12)
    # the in-graph value the optimizer uses agrees with the Python one
    assert float(ops.convert_to_numpy(schedule(step))) == pytest.approx(rate, rel=1e-6)


def test_schedule_round_trips_config(schedule):
    clone = StepDecay.from_config(schedule.get_config())
    assert [clone.value_at(s) for s, _ in PAPER_RATES] == [schedule.value_at(s) for s, _ in PAPER_RATES]


@pytest.mark.parametrize("fractions", [[0.6, 0.4], [0.0], [1.5]])
def test_bad_fractions_are_rejected(fractions):
    with pytest.raises(ValueError, match="lr_decay_at"):
        decay_boundaries(1000, fractions)


def test_each_pass_is_a_fresh_permutation_and_batches_do_not_straddle():
    n, batch = 50, 8
    per_pass = steps_per_pass(n, batch)
    assert per_pass == 6  # 2 images of each pass's permutation are left out
    first = batch_indices(3, n, batch, 0, per_pass)
    second = batch_indices(3, n, batch, per_pass, 2 * per_pass)
    assert len(set(first.tolist())) == len(first) == per_pass * batch
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, pass_permutation(3, 0, n)[:48])
    # any sub-span equals the same slice of the whole pass (what a resumed run reads)
    np.testing.assert_array_equal(batch_indices(3, n, batch, 2, 4), first[16:32])
    with pytest.raises(ValueError, match="straddle"):
        batch_indices(3, n, batch, 5, 7)
    with pytest.raises(ValueError, match="fewer than one batch"):
        steps_per_pass(5, batch)


def test_order_depends_on_seed():
    assert not np.array_equal(batch_indices(0, 100, 10, 0, 10), batch_indices(1, 100, 10, 0, 10))


def test_segments_end_at_every_period_and_at_the_end():
    assert segment_ends(0, 12, 2, 4, 5) == [2, 4, 5, 6, 8, 10, 12]
    assert segment_ends(4, 12, 4, 5) == [5, 8, 10, 12]
    assert segment_ends(0, 3, 10) == [3]
