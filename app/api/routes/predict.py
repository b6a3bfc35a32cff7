"""POST /predict, /predict/annotated and /predict/batch."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import anyio
import cv2
import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from app.api.inputs import Options, OptionsDep, read_image_bytes
from app.config import Settings
from app.deps import ServicesDep, SettingsDep
from app.detector import Face
from app.errors import (
    InvalidInput,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from app.images import decode_image
from app.measure import Stopwatch
from app.predictor import FaceEmotions
from app.schemas import BatchItem, BatchPrediction, ErrorBody, ErrorDetail, Prediction
from app.services import Services

router = APIRouter(tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "undecodable image or bad body",
        401: "API key required",
        413: "too large",
        415: "unsupported type",
        422: "bad parameters",
        503: "not ready or overloaded",
    }.items()
}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "byte", "description": "base64 or data: URI"}},
                }
            },
        },
    }
}


def faces_json(results: list[FaceEmotions]) -> list[dict[str, Any]]:
    return [
        {
            "box": {"x": r.face.x, "y": r.face.y, "width": r.face.width, "height": r.face.height},
            "score": r.face.score,
            "emotions": r.emotions,
            "dominant_emotion": r.dominant,
        }
        for r in results
    ]


async def analyse(
    services: Services, data: bytes, options: Options, watch: Stopwatch
) -> tuple[np.ndarray, list[FaceEmotions]]:
    """In an analysis slot: decode and detect off the event loop in a detection slot, then classify through the
    batcher with the detection slot given back, timing each stage on ``watch``.

    One slot for all three kept the batches small: at c=32, 8 photos in their slots, most of them waiting on the
    classifier, averaged 3.6-4.1 faces a batch and 124-132 photos/s in-process; with the detection slot given back,
    detection goes on meanwhile and the batches average 13-14 faces, 186-195 photos/s (see Settings)."""
    predictor, _, admission = services.require_ready()
    analysis, detection = services.slots()
    settings = services.settings

    def find() -> tuple[np.ndarray, list[Face], np.ndarray]:
        watch.lap("queue")
        rgb = decode_image(data, settings.max_pixels)
        watch.lap("decode")
        faces, crops = predictor.find_faces(rgb, options.threshold, options.min_size, options.max_faces, watch)
        return rgb, faces, crops

    # Admission counts the photos waiting for an analysis slot too, so the queue bound holds; both kinds of slot
    # are handed out first come, first served.
    try:
        with admission, anyio.fail_after(settings.request_timeout_s):
            async with analysis:
                rgb, faces, crops = await anyio.to_thread.run_sync(find, abandon_on_cancel=True, limiter=detection)
                results = []
                if faces:
                    probabilities = await services.classify(crops)
                    watch.lap("classify")
                    results = predictor.label(faces, probabilities)
    except TimeoutError:
        raise Overloaded(
            f"the photo took longer than {settings.request_timeout_s:g} s to analyse", headers={"Retry-After": "5"}
        ) from None
    services.metrics.faces.inc(len(results))
    for stage, ms in watch.laps.items():
        services.metrics.stage.labels(stage).observe(ms / 1000)
    return rgb, results


async def analyse_upload(
    request: Request, services: Services, settings: Settings, options: Options
) -> tuple[np.ndarray, list[FaceEmotions], Stopwatch]:
    """The request's one photo, read (timed as ``upload``: receiving and parsing the body) and analysed."""
    services.require_ready()  # refused before the body is read
    watch = Stopwatch()
    data = await read_image_bytes(request, settings)
    watch.lap("upload")
    rgb, results = await analyse(services, data, options, watch)
    return rgb, results, watch


def model_json(services: Services) -> dict[str, str]:
    _, classifier, _ = services.require_ready()
    return classifier.identity()


@router.post("/predict", response_model=Prediction, responses=ERRORS, openapi_extra=UPLOAD_BODY)
async def predict(
    request: Request,
    response: Response,
    services: ServicesDep,
    settings: SettingsDep,
    options: OptionsDep,
) -> dict[str, Any]:
    """Every face in the photo with its box, detection score and emotion probabilities."""
    rgb, results, watch = await analyse_upload(request, services, settings, options)
    response.headers["server-timing"] = watch.server_timing()
    return {
        "faces": faces_json(results),
        "image": {"width": rgb.shape[1], "height": rgb.shape[0]},
        "model": model_json(services),
    }


@router.post(
    "/predict/annotated",
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}, **ERRORS},
    response_class=Response,
    openapi_extra=UPLOAD_BODY,
)
async def predict_annotated(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    options: OptionsDep,
    format: Annotated[str, Query(pattern="^(jpeg|png)$")] = "jpeg",
) -> Response:
    """The photo back with each face's box and top emotion drawn on it."""
    rgb, results, watch = await analyse_upload(request, services, settings, options)
    encoded = await anyio.to_thread.run_sync(draw, rgb, results, format)
    watch.lap("draw")
    headers = {"x-faces": str(len(results)), "server-timing": watch.server_timing()}
    return Response(encoded, media_type=f"image/{format}", headers=headers)


def draw(rgb: np.ndarray, results: list[FaceEmotions], fmt: str) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    thickness = max(2, round(max(rgb.shape[:2]) / 400))
    for r in results:
        f = r.face
        cv2.rectangle(bgr, (f.x, f.y), (f.x + f.width, f.y + f.height), (0, 200, 0), thickness)
        label = f"{r.dominant} {r.emotions[r.dominant]:.0%}"
        scale = max(0.5, f.width / 160)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(th + 4, f.y)
        cv2.rectangle(bgr, (f.x, top - th - 6), (f.x + tw + 4, top), (0, 200, 0), -1)
        cv2.putText(bgr, label, (f.x + 2, top - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)
    _, buffer = cv2.imencode(".png" if fmt == "png" else ".jpg", bgr)
    return buffer.tobytes()


@router.post(
    "/predict/batch",
    response_model=BatchPrediction,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"}}
                        },
                    }
                }
            },
        }
    },
)
async def predict_batch(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    options: OptionsDep,
) -> dict[str, Any]:
    """Several photos (multipart fields ``files``): one result per file, in order; a bad file gets its own error."""
    services.require_ready()
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("send multipart/form-data with one or more 'files' fields")
    try:
        async with request.form(max_files=settings.max_batch_files, max_fields=settings.max_batch_files + 8) as form:
            uploads = [(u.filename, await u.read()) for u in form.getlist("files") if isinstance(u, UploadFile)]
    except MultiPartException as exc:
        raise InvalidInput(f"malformed multipart body: {exc.message}") from None
    if not uploads:
        raise InvalidInput("multipart body has no file fields named 'files'")

    async def one(filename: str | None, data: bytes) -> BatchItem:
        try:
            if len(data) > settings.max_upload_bytes:
                raise PayloadTooLarge(f"file is larger than the {settings.max_upload_bytes} byte limit")
            rgb, results = await analyse(services, data, options, Stopwatch())
        except ServiceError as exc:
            return BatchItem(filename=filename, error=ErrorDetail(code=exc.code, message=exc.message))
        return BatchItem.model_validate(
            {
                "filename": filename,
                "faces": faces_json(results),
                "image": {"width": rgb.shape[1], "height": rgb.shape[0]},
            }
        )

    results = await asyncio.gather(*(one(name, data) for name, data in uploads))
    return {"results": results, "model": model_json(services)}
