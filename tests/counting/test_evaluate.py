import numpy as np
import pytest

from counting.training.evaluate import CountErrors, PairedChange, mix_score


def test_count_errors_are_the_papers_mae_root_mse_and_bias():
    errors = CountErrors.of([12, 8, 10], [10, 10, 10])
    assert (errors.mae, errors.bias) == (pytest.approx(4 / 3), pytest.approx(0.0))
    assert errors.mse == pytest.approx(np.sqrt(8 / 3))


def test_the_mix_score_weighs_each_set_by_its_mean_count():
    # Ten off on a set of a hundred weighs as much as one off on a set of ten.
    counted = {"dense": [110, 90], "sparse": [11, 9]}
    annotated = {"dense": [100, 100], "sparse": [10, 10]}
    assert mix_score(counted, annotated) == pytest.approx(0.1)


def test_a_paired_change_is_worse_only_beyond_its_standard_error():
    truth = [10, 20, 30, 40]
    baseline = [12, 18, 33, 37]  # absolute errors 2, 2, 3, 3
    consistently = PairedChange.of([13, 17, 33, 37], baseline, truth)  # 3, 3, 3, 3: differences 1, 1, 0, 0
    assert consistently.mae_change == pytest.approx(0.5)
    assert consistently.standard_error == pytest.approx(np.std([1, 1, 0, 0], ddof=1) / 2)
    assert consistently.worse
    noisily = PairedChange.of([16, 20, 30, 40], baseline, truth)  # 6, 0, 0, 0: differences 4, -2, -3, -3
    assert noisily.mae_change == pytest.approx(-1.0)
    assert not noisily.worse
    swinging = PairedChange.of([22, 20, 30, 40], baseline, truth)  # 12, 0, 0, 0: +0.5, all of it from one frame
    assert swinging.mae_change == pytest.approx(0.5)
    assert swinging.standard_error > 0.5 and not swinging.worse
    assert PairedChange.of([12], [11], [10]).worse  # one frame: no spread to judge by, any increase is worse
    with pytest.raises(ValueError, match="no counts"):
        PairedChange.of([], [], [])
