"""The second looks at a photo in which BlazeFace found no face: once with a border around it (an upload that is a
face crop), then turned a quarter each way (a face tilted further than BlazeFace finds, or a photo on its side); and
the search of a turned square of a photo that they and FaceDetector's roll check share.

Each look is whole-photo passes only, handed in as ``search`` (one 192x192 pass over a square image, the boxes in
its pixels), so it costs nothing on a photo with a face and a few passes on one without.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np

from app.blazeface import INPUT
from app.tiles import shrink

Hits = tuple[list[list[int]], list[float], list[float]]  # one pass's boxes (x, y, w, h), scores and rolls
Search = Callable[[np.ndarray, float], Hits]
Each = Callable[[Callable[[float], Hits], Iterable[float]], Iterable[Hits]]  # map, as a thread pool's

# Both looks ask this much more score than the first: at 0.55 the padded one found 68 % of FER2013's val crops
# uploaded as they are (8-12 % without it), and no face in 19 photos without any (one at 0.50).
EXTRA_SCORE = 0.05
# The padded look keeps only a face at least this share of the photo's width: it looks for a photo that is a face
# (FER2013's val crops: 99 % of the faces it finds are over 0.48 of the crop), not for the cup of scikit-image's
# coffee squashed to 640x640 (0.29 of it, score 0.58) that it found before (in 17 of benchmarks/detection.py's 360
# photos). The cost: 1.5-2.4 % of the faces found in val crops enlarged and set in larger photos (benchmarks/framing).
PADDED_MIN_SHARE = 0.4
# degrees counter-clockwise. BlazeFace finds 74 % of FER2013's val crops set upright in a photo, 46 % turned 45
# degrees, 24 % at 60 and 9 % at 90 (benchmarks/framing.py, 2x in 320 px, 400 crops). With the photo also turned a
# quarter each way when nothing is found: 51, 54 and 60 %; with eighths too (45, -45, 90, -90), 54, 54 and 60 % for
# twice the passes; with (60, -60), 50, 33 and 21 %.
TURNS = (90.0, -90.0)
# px in BlazeFace's input: what the turned look keeps. In photos without a face it boxed the text of scikit-image's
# text photo and a spot in its coffee photo, 9-16 px wide there, at 0.55-0.66; a face is 25-58 px in the photos of
# benchmarks/framing.py (1x in 256 px to 4x in 640 px, turned 45-90 degrees)
TURNED_MIN_SIDE = 24
# BlazeFace's box shrinks as a face turns: the median box of FER2013 val crops turned 30 degrees is 0.90 of the
# upright one's, 0.76-0.82 at 40 (0.97-0.98 at 20), about 1 - 0.46 sin^2(roll)
BOX_SHRINK, BOX_SHRINK_FLOOR = 0.46, 0.7


def box_shrink(roll: float) -> float:
    """How much narrower BlazeFace boxes a face leaning ``roll`` degrees than the same face upright."""
    return max(BOX_SHRINK_FLOOR, 1 - BOX_SHRINK * float(np.sin(np.radians(roll))) ** 2)


def turned_to_middle(centre: tuple[float, float], angle: float, scale: float, side: int) -> np.ndarray:
    """The affine transform (for cv2.warpAffine) that turns an image ``angle`` degrees counter-clockwise about
    ``centre``, scales it, and puts ``centre`` in the middle of a side x side output."""
    turn = cv2.getRotationMatrix2D(centre, angle, scale)
    turn[:, 2] += np.array([side / 2 - centre[0], side / 2 - centre[1]])
    return turn


def padded_look(rgb: np.ndarray, threshold: float, search: Search) -> Hits:
    """One pass over the photo set in a border half its size wide (edges extended): BlazeFace misses a face that
    fills the photo and is cut by its edges (an upload that is already a face crop) and finds it once it has room
    around it. Only a face that fills much of the photo is kept (PADDED_MIN_SHARE)."""
    height, width = rgb.shape[:2]
    scale = min(1.0, INPUT / 2 / max(height, width))  # padded, it is letterboxed to INPUT anyway: shrink first
    if scale < 1.0:
        rgb = shrink(rgb, max(1, round(width * scale)), max(1, round(height * scale)))
    side = max(rgb.shape[:2])
    pad = side // 2
    boxes, scores, rolls = search(cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE), threshold)
    kept = [i for i, box in enumerate(boxes) if box[2] >= PADDED_MIN_SHARE * side]
    return (
        [
            [round((x - pad) / scale), round((y - pad) / scale), round(w / scale), round(h / scale)]
            for x, y, w, h in (boxes[i] for i in kept)
        ],
        [scores[i] for i in kept],
        [rolls[i] for i in kept],
    )


def turned_look(rgb: np.ndarray, threshold: float, search: Search, each: Each) -> Hits:
    """The whole photo turned by each of TURNS, the passes side by side (``each`` maps them over the cores): every
    face boxed at least TURNED_MIN_SIDE wide in a pass; one face found at two turns is merged with the others."""
    height, width = rgb.shape[:2]

    def turned(angle: float) -> Hits:
        cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
        span = max(width * cos + height * sin, width * sin + height * cos)  # the turned photo, edge to edge
        return turned_search(rgb, (width / 2, height / 2), span, angle, threshold, search, TURNED_MIN_SIDE)

    return merged(each(turned, TURNS))


def merged(passes: Iterable[Hits]) -> Hits:
    """The hits of several passes as one: boxes, scores and rolls each in one list, pass after pass."""
    boxes: list[list[int]] = []
    scores: list[float] = []
    rolls: list[float] = []
    for b, s, r in passes:
        boxes += b
        scores += s
        rolls += r
    return boxes, scores, rolls


def turned_search(
    rgb: np.ndarray,
    centre: tuple[float, float],
    span: float,
    angle: float,
    threshold: float,
    search: Search,
    min_side: int = 0,
) -> Hits:
    """One pass over the square of side ``span`` about ``centre``, turned ``angle`` degrees counter-clockwise (black
    past the photo's edges); the faces boxed at least ``min_side`` px wide in its input, their boxes in the photo's
    pixels, each as BlazeFace would box that face where it leans (see box_shrink), and their rolls in the photo."""
    height, width = rgb.shape[:2]
    cx, cy = centre
    reach = span * (abs(np.cos(np.radians(angle))) + abs(np.sin(np.radians(angle)))) / 2  # what the turn can show
    x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
    part = rgb[y0 : min(height, int(np.ceil(cy + reach))), x0 : min(width, int(np.ceil(cx + reach)))]
    scale = INPUT / span
    small = part
    if scale < 1.0:  # shrunk with anti-aliasing first, so that the turn resamples at about the input's own scale
        small = shrink(part, max(1, round(part.shape[1] * scale)), max(1, round(part.shape[0] * scale)))
    fx, fy = small.shape[1] / part.shape[1], small.shape[0] / part.shape[0]
    middle = ((cx - x0) * fx, (cy - y0) * fy)
    turn = turned_to_middle(middle, angle, scale / fx, INPUT)
    canvas = cv2.warpAffine(small, turn, (INPUT, INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    boxes, scores, rolls = search(canvas, threshold)
    back = cv2.invertAffineTransform(turn)  # canvas -> small
    found: list[list[int]] = []
    leans, kept = [], []
    for (x, y, w, h), score, roll in zip(boxes, scores, rolls, strict=True):
        if max(w, h) < min_side:
            continue
        sx, sy = back @ (x + w / 2, y + h / 2, 1.0)
        mx, my = sx / fx + x0, sy / fy + y0
        lean = (roll + angle + 180) % 360 - 180  # turning the photo counter-clockwise took ``angle`` off the roll
        side = max(w, h) / box_shrink(roll) * box_shrink(lean) / scale
        found.append([round(mx - side / 2), round(my - side / 2), round(side), round(side)])
        leans.append(lean)
        kept.append(score)
    return found, kept, leans
