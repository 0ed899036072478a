"""The model shipped inside the package: it loads with no arguments and reads a real smile."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from emolens._machine import describe_machine
from emolens.evaluation import predict_probabilities
from emolens.inference._ort import reference_session
from emolens.inference.classifier import EmotionClassifier, default_model_path
from emolens.inference.recognizer import EmotionRecognizer
from emolens.labels import EMOTIONS


def test_defaults_load_the_shipped_model_and_find_a_smile(astronaut_bgr):
    recognizer = EmotionRecognizer()
    assert recognizer.classifier.model_path == default_model_path()
    (face,) = recognizer(astronaut_bgr)
    assert face.emotion == "happy" and face.confidence > 0.5  # she smiles broadly


def test_model_card_matches_the_model():
    models = resources.files("emolens") / "models"
    card = json.loads((models / "model_card.json").read_text())
    meta = EmotionClassifier().metadata
    assert card["arch"] == meta["arch"] and card["labels"] == list(EMOTIONS)
    assert card["tta_flip_in_model"] == (meta["tta_flip"] == "true")
    assert all(m["recall"] > 0 for m in card["publictest"]["per_class"].values())
    assert (models / "model_card.md").is_file() and (models / "confusion.png").is_file()


def test_public_names_resolve():
    import emolens

    for name in emolens.__all__:
        assert getattr(emolens, name) is not None, name


def _model_card() -> dict:
    return json.loads((resources.files("emolens") / "models" / "model_card.json").read_text())


@pytest.fixture(scope="module")
def shipped_scores(public_test) -> np.ndarray:
    """The shipped model's scores on PublicTest through the library's own session."""
    classifier = EmotionClassifier()
    return np.concatenate(
        [classifier.classify(public_test.images[i : i + 256]) for i in range(0, len(public_test), 256)]
    )


def test_shipped_model_scores_its_model_card_on_publictest(public_test, shipped_scores):
    accuracy = float(np.mean(shipped_scores.argmax(1) == public_test.labels))
    card = _model_card()["publictest"]["accuracy"]
    assert abs(accuracy - card) <= 0.003, f"PublicTest {accuracy:.4f} on {describe_machine()}; the card says {card:.4f}"


def test_shipped_model_agrees_with_the_reference_path(public_test, shipped_scores):
    """The fast kernels of this CPU against ONNX Runtime's reference maths (every 3rd face: 1,197)."""
    every = slice(None, None, 3)
    reference = predict_probabilities(None, public_test.images[every], reference=True)
    ours = shipped_scores[every]
    agreement = float(np.mean(ours.argmax(1) == reference.argmax(1)))
    labels = public_test.labels[every]
    gap = abs(float(np.mean(ours.argmax(1) == labels)) - float(np.mean(reference.argmax(1) == labels)))
    assert agreement >= 0.995, f"top emotion as the reference path on {agreement:.2%} on {describe_machine()}"
    assert gap <= 0.003


def test_shipped_detector_agrees_with_the_reference_path(astronaut_bgr):
    from emolens.inference.detector import RetinaFaceDetector

    fast, reference = RetinaFaceDetector(), RetinaFaceDetector()
    reference._session = reference_session(RetinaFaceDetector.default_model_path())
    (ours, our_scores), (theirs, their_scores) = fast.detect(astronaut_bgr), reference.detect(astronaut_bgr)
    assert len(ours) == len(theirs) == 1
    assert np.abs(ours - theirs).max() <= 1 and np.allclose(our_scores, their_scores, atol=1e-3)


def test_shipped_int8_weights_cannot_saturate_on_any_cpu():
    """7-bit weights: what makes the int8 model exact on AVX2, whatever CPU runs this test."""
    import onnx

    from emolens.training.quantize import int8_weight_range

    low, high = int8_weight_range(onnx.load(str(default_model_path())))
    assert -64 <= low < 0 < high <= 64
