"""The one canonical order of emotion labels.

FER2013's label codes fix the order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
5 surprise, 6 neutral. Datasets map folder names and CSV codes to it *by name*;
exported models carry it in their metadata.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Names other distributions use for the same classes (e.g. opencv_zoo's "fearful").
_ALIASES = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "calm": "neutral",
}


def emotion_index(name: str) -> int:
    """Return the canonical index of an emotion name (case-insensitive, common aliases).

    Raises:
        ValueError: if the name is not one of the 7 FER2013 emotions.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return EMOTIONS.index(key)
    except ValueError:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}") from None
