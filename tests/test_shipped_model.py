"""The models shipped inside the package: they load by name, read a real smile and score their cards."""

from __future__ import annotations

import numpy as np
import pytest

from emolens._machine import describe_machine
from emolens.errors import ModelLoadError
from emolens.evaluation import predict_probabilities
from emolens.inference.classifier import EmotionClassifier, default_model_path
from emolens.inference.recognizer import EmotionRecognizer
from emolens.labels import EMOTIONS
from emolens.shipped import CARD_ASSETS, SHIPPED_MODELS, STREAM_MODEL, card_asset, model_card, shipped_model_path


def test_defaults_load_the_shipped_model_and_find_a_smile(astronaut_bgr):
    recognizer = EmotionRecognizer()
    assert recognizer.classifier.model_path == default_model_path()
    (face,) = recognizer(astronaut_bgr)
    assert face.emotion == "happy" and face.confidence > 0.5  # she smiles broadly


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_model_card_matches_the_model(name):
    card = model_card(name)
    meta = EmotionClassifier(name).metadata
    assert card["arch"] == meta["arch"] and card["labels"] == list(EMOTIONS)
    assert card["tta_flip_in_model"] == (meta["tta_flip"] == "true")
    assert all(m["recall"] > 0 for m in card["publictest"]["per_class"].values())
    for asset in CARD_ASSETS:
        assert card_asset(name, asset).stat().st_size > 0, asset
    from emolens.training.models import count_multiply_adds, create_model

    assert card["multiply_adds_per_view"] == count_multiply_adds(create_model(card["arch"]))


def test_models_are_chosen_by_name(astronaut_bgr):
    assert EmotionClassifier("compact").model_path == shipped_model_path("compact") != default_model_path()
    assert EmotionClassifier().model_path == shipped_model_path(STREAM_MODEL) == shipped_model_path("accurate")
    (face,) = EmotionRecognizer("compact")(astronaut_bgr)
    assert face.emotion == "happy"
    with pytest.raises(
        ModelLoadError, match=r"model file not found: .*nope \(shipped models by name: compact, accurate\)"
    ):
        EmotionClassifier("nope")  # not a shipped name: read as a path


def test_public_names_resolve():
    import emolens

    for name in emolens.__all__:
        assert getattr(emolens, name) is not None, name


@pytest.fixture(scope="module", params=list(SHIPPED_MODELS))
def shipped(request, public_test) -> tuple[str, np.ndarray]:
    """A shipped model's name and its scores on PublicTest through the library's own session."""
    classifier = EmotionClassifier(request.param)
    scores = np.concatenate(
        [classifier.classify(public_test.images[i : i + 256]) for i in range(0, len(public_test), 256)]
    )
    return request.param, scores


def test_shipped_model_scores_its_model_card_on_publictest(public_test, shipped):
    name, scores = shipped
    accuracy = float(np.mean(scores.argmax(1) == public_test.labels))
    card = model_card(name)["publictest"]["accuracy"]
    assert abs(accuracy - card) <= 0.003, f"{name}: PublicTest {accuracy:.4f} on {describe_machine()}; card {card:.4f}"


def test_shipped_model_agrees_with_the_reference_path(public_test, shipped):
    """The fast kernels of this CPU against ONNX Runtime's reference maths (every 3rd face: 1,197)."""
    name, scores = shipped
    every = slice(None, None, 3)
    reference = predict_probabilities(name, public_test.images[every], reference=True)
    ours = scores[every]
    agreement = float(np.mean(ours.argmax(1) == reference.argmax(1)))
    labels = public_test.labels[every]
    gap = abs(float(np.mean(ours.argmax(1) == labels)) - float(np.mean(reference.argmax(1) == labels)))
    assert agreement >= 0.995, f"{name}: top emotion as the reference path on {agreement:.2%} on {describe_machine()}"
    assert gap <= 0.003


def test_shipped_detector_agrees_with_the_reference_path(astronaut_bgr):
    from emolens.inference.detector import RetinaFaceDetector

    fast, reference = RetinaFaceDetector(), RetinaFaceDetector(reference=True)
    (ours, our_scores), (theirs, their_scores) = fast.detect(astronaut_bgr), reference.detect(astronaut_bgr)
    assert len(ours) == len(theirs) == 1
    assert np.abs(ours - theirs).max() <= 1 and np.allclose(our_scores, their_scores, atol=1e-3)


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_int8_weights_cannot_saturate_on_any_cpu(name):
    """7-bit weights: what makes the int8 model exact on AVX2, whatever CPU runs this test."""
    import onnx

    from emolens.training.quantize import int8_weight_range

    low, high = int8_weight_range(onnx.load(str(shipped_model_path(name))))
    assert -64 <= low < 0 < high <= 64
