"""Evaluation metrics on hand-made predictions: top-1, top-5, per-class error, confusion matrix; masks.npz keys."""

import numpy as np
import pytest

from ran.evaluate import classification_metrics, mask_arrays, score, summarise

# 6 samples, 3 classes; rows are logits. Predictions: 0, 1, 2, 0, 2, 1; truth: 0, 1, 1, 0, 2, 2.
LOGITS = np.array([[3, 1, 0], [0, 2, 1], [0, 1, 5], [9, 0, 0], [1, 0, 2], [0, 4, 3]], dtype=np.float32)
TRUTH = np.array([0, 1, 1, 0, 2, 2])


def test_top1_per_class_and_confusion():
    metrics = classification_metrics(LOGITS, TRUTH, 3, top5=False)
    assert metrics["top1_error_pct"] == pytest.approx(100 * 2 / 6)
    assert metrics["per_class_error_pct"] == pytest.approx([0.0, 50.0, 50.0])
    assert metrics["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]
    assert metrics["top5_error_pct"] is None and metrics["num_test"] == 6


def test_absent_class_has_no_error_rate():
    metrics = classification_metrics(LOGITS[:2], TRUTH[:2], 3, top5=False)
    assert metrics["per_class_error_pct"] == [0.0, 0.0, None]


def test_top5_counts_classes_ranked_above_the_truth():
    logits = np.tile(np.arange(10, dtype=np.float32), (4, 1))  # class 9 scores highest, class 0 lowest
    truth = np.array([9, 5, 4, 0])  # ranks 0, 4, 5, 9: the first two are within the top 5
    metrics = classification_metrics(logits, truth, 10, top5=True)
    assert metrics["top5_error_pct"] == pytest.approx(50.0)
    assert metrics["top1_error_pct"] == pytest.approx(75.0)


def test_bad_logits_are_refused():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(LOGITS, TRUTH, 4, top5=False)


def test_non_finite_logits_count_as_errors():
    broken = LOGITS.copy()
    broken[0, 2] = np.nan  # sample 0 was right (class 0 scored 3); its row no longer names a class
    scores = classification_metrics(broken, TRUTH, 3, top5=True)
    assert scores["nonfinite_samples"] == 1
    assert scores["top1_error_pct"] == pytest.approx(100 * 3 / 6)
    assert scores["top5_error_pct"] == pytest.approx(100 * 1 / 6)
    assert scores["per_class_error_pct"] == pytest.approx([50.0, 50.0, 50.0])
    assert scores["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 1, 1]]


def test_summary_uses_the_sample_standard_deviation():
    assert summarise([5.0]) == {"mean": 5.0, "std": 0.0, "n": 1}
    summary = summarise([4.0, 6.0, 8.0])
    assert summary["mean"] == pytest.approx(6.0) and summary["std"] == pytest.approx(2.0) and summary["n"] == 3


def test_mask_arrays_keep_every_module_and_alias_each_stage_first():
    images = np.zeros((2, 32, 32, 3), np.uint8)
    fake = {"stage1_module2": np.full((2, 32, 32), 0.2), "stage1_module1": np.full((2, 32, 32), 0.1),
            "stage2_module1": np.full((2, 16, 16), 0.3)}
    arrays = mask_arrays(None, images, lambda model, batch: fake)
    assert set(arrays) == {"images", "stage1_module1", "stage1_module2", "stage2_module1", "stage1", "stage2"}
    np.testing.assert_allclose(arrays["stage1"], 0.1)
    assert arrays["stage2"].shape == (2, 16, 16) and arrays["stage2"].dtype == np.float32
    empty = mask_arrays(None, images, None, has_attention=False)
    assert list(empty) == ["images"] and empty["images"].shape == (0, 32, 32, 3)


def test_score_holds_only_the_numbers_dvc_lists():
    cifar100 = {"status": "evaluated", "top1_error_pct": {"mean": 20.5, "std": 0.5, "n": 2},
                "top5_error_pct": {"mean": 5.0, "std": 0.25, "n": 2}, "config": {}, "seeds": []}
    assert score(cifar100) == {"top1_err": 20.5, "top1_std": 0.5, "top5_err": 5.0, "top5_std": 0.25, "seeds": 2}
    cifar10 = cifar100 | {"top5_error_pct": None}
    assert score(cifar10) == {"top1_err": 20.5, "top1_std": 0.5, "seeds": 2}
    assert score({"status": "not selected", "reason": "...", "config": {}}) == {"seeds": 0}
