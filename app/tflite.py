"""The TFLite interpreter both networks run in: LiteRT's own wheel (``ai-edge-litert``) where it is installed,
else the copy inside TensorFlow.

The same interpreter and XNNPACK kernels either way (a lone face 2.9-3.4 ms in both, the same probabilities), but
LiteRT imports in 0.01 s and leaves the process at 46 MB, TensorFlow in 4.4 s and 732 MB before a model is loaded:
on CPU the service then never imports TensorFlow unless it serves the SavedModel itself.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def load_interpreter(path: Path, threads: int) -> Any:
    """A TFLite interpreter for the model file at ``path`` running on ``threads`` threads."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
            return tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    return Interpreter(model_path=str(path), num_threads=threads)
