"""The long-lived objects of one running service, created in the lifespan and reached through deps."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
import numpy as np

from app.batching import Admission, DynamicBatcher
from app.classifier import EmotionClassifier
from app.config import Settings
from app.detector import FaceDetector
from app.errors import ModelNotReady
from app.images import prepare_decoding
from app.metrics import ServiceMetrics
from app.predictor import EmotionPredictor

log = logging.getLogger("app")


def load_classifier(model_dir: Path, runtime: str, detector: FaceDetector) -> EmotionClassifier:
    """The classifier, loaded as the service serves it: ``auto`` picks the CPU twin whose lone face, timed right
    after a 640 px photo's detection by ``detector``, plus a batch of 8 costs least.

    The blank photo is searched as a photo with a face is (its five windows), without the second looks that
    only a faceless photo gets, and no face of which is ever classified: right after that look's pass on both cores
    through OpenVINO, TFLite's lone face took 4.4-6.1 ms against 3.0-3.3 after a real photo's detection, and lost
    the choice to OpenVINO's (3.8-4.5 ms), which serves a lone 256 px photo ~2 ms slower."""
    classifier = EmotionClassifier(model_dir, runtime)
    classifier.load(between=partial(detector.detect, np.zeros((640, 640, 3), np.uint8), look_again=False))
    return classifier


@dataclass
class Services:
    settings: Settings
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    classifier: EmotionClassifier | None = None
    predictor: EmotionPredictor | None = None
    batcher: DynamicBatcher | None = None
    admission: Admission | None = None
    analysis: anyio.CapacityLimiter | None = None  # made in the lifespan: they belong to the event loop
    detection: anyio.CapacityLimiter | None = None
    load_error: str | None = None

    def start_loading(self) -> threading.Thread:
        """Load and warm the model in the background; /readyz answers 503 until it is done."""
        thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        s = self.settings
        try:
            detector = FaceDetector(runtime=s.detector_runtime)
            # Warm-up: one window loads the lone-pass network, 5 tiles the per-core ones; OpenVINO's networks run
            # slower for their first few passes (the first 512 px photo after startup took 17 ms to detect, later
            # ones 10), so each per-core network gets ~10 passes here (~50 ms).
            for side in (256, 512, 512, 512, 512):
                detector.detect(np.zeros((side, side, 3), np.uint8))
            classifier = load_classifier(s.model_dir, s.runtime, detector)
            prepare_decoding()
            self.admission = Admission(s.queue_size)
            batcher = DynamicBatcher(
                classifier.predict,
                s.batch_max_size,
                s.batch_max_wait_ms / 1000,
                s.queue_size,
                on_batch=self.metrics.batch_size.observe,
                busy=lambda: self.detection.borrowed_tokens if self.detection else 0,
            )
            self.batcher = batcher
            self.predictor = EmotionPredictor(
                detector, batcher, classifier.class_names, classifier.input_size, s.face_margin, s.max_roll
            )
            # TensorFlow leaves ~400k Python objects behind; a full garbage collection walking them all takes
            # ~300 ms, a pause any request could hit. Freezing them keeps collections to what requests allocate.
            gc.collect()
            gc.freeze()
            self.classifier = classifier
        except Exception as exc:
            self.load_error = str(exc)
            log.error("model failed to load: %s", exc)

    @property
    def ready(self) -> bool:
        return self.predictor is not None and self.classifier is not None and self.classifier.ready

    def require_ready(self) -> tuple[EmotionPredictor, EmotionClassifier, Admission]:
        if self.predictor is None or self.classifier is None or self.admission is None:
            why = "the model failed to load" if self.load_error else "the model is still loading"
            raise ModelNotReady(f"{why}; retry shortly", headers={"Retry-After": "2"})
        return self.predictor, self.classifier, self.admission

    def slots(self) -> tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]:
        """The (analysis, detection) slots, made in the lifespan (see Settings.analysis_concurrency)."""
        if self.analysis is None or self.detection is None:
            raise ModelNotReady("the service is still starting; retry shortly", headers={"Retry-After": "2"})
        return self.analysis, self.detection

    async def classify(self, crops: np.ndarray) -> np.ndarray:
        """The probabilities for ``crops``, from the batcher, awaited on the event loop: while the crops wait for
        company and for the batch before theirs, their photo holds neither a thread nor an analysis slot."""
        if self.batcher is None:
            raise ModelNotReady("the model is still loading; retry shortly", headers={"Retry-After": "2"})
        return await asyncio.wrap_future(self.batcher.submit(crops))

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        if self.predictor is not None:
            self.predictor.detector.close()
