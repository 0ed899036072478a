from __future__ import annotations

import numpy as np
import pytest

from emolens.metrics import classification_report, confusion_matrix


def test_report_by_hand():
    y_true = np.array([0, 0, 1, 1, 1, 3])
    y_pred = np.array([0, 1, 1, 1, 0, 3])
    r = classification_report(y_true, y_pred)
    assert r["n"] == 6 and r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class"]["angry"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r["per_class"]["disgust"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["disgust"]["recall"] == pytest.approx(2 / 3)
    assert r["per_class"]["fear"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro-F1 over the classes present (angry, disgust, happy)
    assert r["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert r["confusion_matrix"][1] == [1, 2, 0, 0, 0, 0, 0]


def test_confusion_shape_mismatch():
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros(3), np.zeros(4))


def test_expected_calibration_error():
    from emolens.metrics import expected_calibration_error

    top = np.array([[0.8, 0.2]] * 10)
    # right on 8 of 10 faces at a top score of 0.8: calibrated
    assert expected_calibration_error(top, np.array([0] * 8 + [1] * 2)) == pytest.approx(0)
    # right on all of them: 0.2 under-confident
    assert expected_calibration_error(top, np.zeros(10, int)) == pytest.approx(0.2)
    # two bins, each weighted by its share: 0.5 * |1 - 0.9| + 0.5 * |0 - 0.6|
    mixed = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    assert expected_calibration_error(mixed, np.array([0, 0, 1, 1])) == pytest.approx(0.35)
    with pytest.raises(ValueError, match="3 score rows for 2 labels"):
        expected_calibration_error(top[:3], np.zeros(2, int))
