"""Class names, their aliases and split-folder names: the vocabulary of every dataset format."""

from __future__ import annotations

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

_ALIASES = {
    "angry": ("anger", "angry", "mad"),
    "disgust": ("disgust", "disgusted", "disgusting"),
    "fear": ("fear", "fearful", "afraid", "scared"),
    "happy": ("happy", "happiness", "joy", "smile"),
    "neutral": ("neutral", "calm"),
    "sad": ("sad", "sadness", "unhappy"),
    "surprise": ("surprise", "surprised", "surprising"),
}
ALIASES = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}

# Folder names that mark a split, mapped to the split they hold (FER+ folder names included).
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "fer2013train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "publictest": "val",
    "fer2013valid": "val",
    "test": "test",
    "privatetest": "test",
    "fer2013test": "test",
}


def canonical_class(name: str) -> str | None:
    """The emotion a class folder or column name stands for, or None when it is not one of ours."""
    key = name.strip().lower()
    if key[:1].isdigit() and "_" in key:  # "3_happy" style folders
        key = key.split("_", 1)[1]
    return ALIASES.get(key)
