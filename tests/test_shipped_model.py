"""The model shipped inside the package: it loads with no arguments and reads a real smile."""

from __future__ import annotations

import json
from importlib import resources

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
