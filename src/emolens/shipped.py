"""The models shipped inside the package, chosen by name, and the files of their model cards.

Two classifiers ship: ``accurate`` (vggface48), the default everywhere, and ``compact``
(vggface48_slim: a sixth of the arithmetic and less hurt by noise, blur and JPEG, but 3.4 points
less accurate on clean faces) for machines where speed matters more. Streams have a default
of their own so that a compact model as accurate as the other can take them over. Each has a
card written by ``scripts/make_model_card.py``: ``<file stem>.card.json`` and ``.card.md``, with
``.curves.png``, ``.confusion.png`` and ``.metrics.json`` beside them.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from emolens.errors import ModelLoadError, SettingsError

SHIPPED_MODELS = {"compact": "emolens_vggface48_slim.onnx", "accurate": "emolens_vggface48.onnx"}
DEFAULT_MODEL = "accurate"  # single images
# Videos, camera streams, the live camera: the compact model (67.9% PublicTest) is not yet as
# accurate as this one (71.3%), so streams keep the accurate model by default.
STREAM_MODEL = "accurate"
CARD_ASSETS = ("card.json", "card.md", "curves.png", "confusion.png", "metrics.json")


def models_dir() -> Path:
    return Path(str(resources.files("emolens") / "models"))


def shipped_model_path(name: str) -> Path:
    """The ONNX file of a shipped model chosen by name (see :data:`SHIPPED_MODELS`)."""
    if name not in SHIPPED_MODELS:
        raise ModelLoadError(f"unknown model {name!r}; shipped models: {', '.join(SHIPPED_MODELS)}")
    return models_dir() / SHIPPED_MODELS[name]


def resolve_model(model: str | os.PathLike | None) -> Path:
    """A shipped model's name, an ONNX file, or None (the default model) -> the file to load."""
    if model is None:
        return shipped_model_path(DEFAULT_MODEL)
    if isinstance(model, str) and model in SHIPPED_MODELS:
        return shipped_model_path(model)
    return Path(model)


def card_asset(name: str, asset: str) -> Path:
    """A file of a shipped model's card: ``asset`` is one of :data:`CARD_ASSETS`."""
    if asset not in CARD_ASSETS:
        raise SettingsError(f"unknown card file {asset!r}; choose from {', '.join(CARD_ASSETS)}")
    return shipped_model_path(name).with_suffix("." + asset)


def model_card(name: str) -> dict | None:
    """A shipped model's card as a dict; None when the installation has none."""
    try:
        return json.loads(card_asset(name, "card.json").read_text())
    except (OSError, ValueError):
        return None


def model_summary(name: str) -> dict:
    """A shipped model's headline figures, from its card (None where the card lacks them)."""
    card = model_card(name) or {}
    return {
        "name": name,
        "arch": card.get("arch"),
        "publictest_accuracy": card.get("publictest", {}).get("accuracy"),
        "multiply_adds_per_view": card.get("multiply_adds_per_view"),
        "quantization": card.get("quantization"),
    }
