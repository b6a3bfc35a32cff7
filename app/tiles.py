"""Where BlazeFace looks in a photo: square windows letterboxed into its 192x192 input, tiles for small faces."""

from __future__ import annotations

import cv2
import numpy as np

from app.blazeface import INPUT

# px: smaller faces in the 192x192 input are missed (measured on scaled-down astronauts on plain backgrounds; 16-17
# on busy ones, where planning for that would double a 640 px photo's passes at the default min_size)
SMALLEST_VISIBLE = 13


def windows(height: int, width: int, min_size: int) -> list[tuple[int, int, int]]:
    """Square windows (x0, y0, side): the whole photo, plus overlapping tiles when faces of ``min_size`` would
    be smaller than BlazeFace can see in a 192x192 view of the whole photo (about 13 px there)."""
    side = max(height, width)
    out = [(0, 0, side)]
    tile = max(INPUT, int(min_size * INPUT / SMALLEST_VISIBLE))
    if side <= tile:
        return out
    overlap = min(tile // 2, max(min_size * 2, int(SMALLEST_VISIBLE * side / INPUT) + 1))
    for y0 in _starts(height, tile, overlap):
        for x0 in _starts(width, tile, overlap):
            out.append((x0, y0, tile))
    return out


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    count = -(-(length - overlap) // (tile - overlap))
    step = (length - tile) / (count - 1) if count > 1 else 0
    return [round(i * step) for i in range(count)]


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Downscale with anti-aliasing, fast: halve with a Gaussian pyramid while the ratio is 2 or more, then
    bilinear for the rest (cv2.INTER_AREA at a non-integer ratio costs 0.8 ms for a 354 px tile, 2 ms at 640 px)."""
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        image = cv2.pyrDown(image)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def cut_by_window(box: list[int], x0: int, y0: int, side: int, image_w: int, image_h: int) -> bool:
    """True when the box crosses an edge of the window that is not an edge of the photo."""
    x, y, w, h = box
    slack = max(2, w // 10)
    return bool(
        (x < x0 - slack and x0 > 0)
        or (y < y0 - slack and y0 > 0)
        or (x + w > x0 + side + slack and x0 + side < image_w)
        or (y + h > y0 + side + slack and y0 + side < image_h)
    )
