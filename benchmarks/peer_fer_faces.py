"""The faces `fer` reports in each photo, run in its own interpreter by benchmarks.detection.

    FER_PYTHON benchmarks/peer_fer_faces.py PHOTOS_JSON MIN_FACE_SIZE

Prints one JSON object: photo name -> the boxes (x, y, width, height) of ``detect_emotions``, what a user of `fer`
gets, with its default Haar cascade at the given smallest face width.
"""

import json
import sys

from fer.fer import FER
from peer_timing import read

paths = json.loads(sys.argv[1])
detector = FER(min_face_size=int(sys.argv[2]))
boxes = {
    name: [list(map(int, face["box"])) for face in detector.detect_emotions(read(path))] for name, path in paths.items()
}
print(json.dumps(boxes))
