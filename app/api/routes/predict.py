"""POST /predict, /predict/annotated and /predict/batch."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import anyio
import cv2
import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from app.config import Settings
from app.deps import ServicesDep, SettingsDep
from app.errors import (
    InvalidInput,
    InvalidParameters,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    UnsupportedMediaType,
)
from app.images import decode_base64, decode_image
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
Threshold = Annotated[float | None, Query(ge=0.0, le=1.0, description="face detection score threshold")]
MinSize = Annotated[int | None, Query(ge=1, le=100_000, description="smallest face width in pixels")]
MaxFaces = Annotated[
    int | None, Query(ge=1, le=10_000, description="most faces returned, best first; capped at EMOTION_MAX_FACES")
]


class Options:
    def __init__(self, settings: Settings, threshold: float | None, min_size: int | None, max_faces: int | None):
        self.threshold = settings.detection_threshold if threshold is None else threshold
        self.min_size = settings.min_face_size if min_size is None else min_size
        self.max_faces = min(max_faces or settings.max_faces, settings.max_faces)  # capped by the server


async def request_options(
    request: Request,
    settings: SettingsDep,
    threshold: Threshold = None,
    min_face_size: MinSize = None,
    max_faces: MaxFaces = None,
) -> Options:
    """The detection query options shared by every predict endpoint, defaults from the settings."""
    refuse_unknown_query(request)
    return Options(settings, threshold, min_face_size, max_faces)


def refuse_unknown_query(request: Request) -> None:
    """A misspelt option (``min_size`` for ``min_face_size``) is an error, not a silent default."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    accepted = query_names(route.dependant)
    unknown = sorted(set(request.query_params) - accepted)
    if unknown:
        raise InvalidParameters(
            f"unknown query parameter(s) {', '.join(unknown)}; {route.path} accepts {', '.join(sorted(accepted))}"
        )


def query_names(dependant: Dependant) -> set[str]:
    """Every query parameter a route declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= query_names(dependency)
    return names


OptionsDep = Annotated[Options, Depends(request_options)]


async def read_image_bytes(request: Request, settings: Settings) -> bytes:
    """The photo from a multipart field ``file``, a JSON ``{"image": base64}`` body or a raw image body."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        try:
            async with request.form(max_files=1, max_fields=8) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise InvalidInput("multipart body has no file field named 'file'")
                return await upload.read()
        except MultiPartException as exc:
            raise InvalidInput(f"malformed multipart body: {exc.message}") from None
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidInput("body is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("image"), str):
            raise InvalidInput('JSON body must be an object {"image": "<base64 or data: URI>"}')
        return decode_base64(body["image"], settings.max_upload_bytes)
    if content_type.startswith(("image/", "application/octet-stream")):
        return await request.body()
    raise UnsupportedMediaType(
        f"content type {content_type or 'missing'!r}; send multipart/form-data with a 'file' field or JSON"
    )


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


async def analyse(services: Services, data: bytes, options: Options) -> tuple[np.ndarray, list[FaceEmotions]]:
    """Decode, detect and classify off the event loop."""
    predictor, _, admission = services.require_ready()
    settings = services.settings

    def work() -> tuple[np.ndarray, list[FaceEmotions]]:
        rgb = decode_image(data, settings.max_pixels)
        return rgb, predictor.predict(rgb, options.threshold, options.min_size, options.max_faces)

    # Admission counts the photos waiting for an analysis slot too, so the queue bound holds; the slots are
    # handed out first come, first served (see Settings.analysis_concurrency).
    try:
        with admission, anyio.fail_after(settings.request_timeout_s):
            rgb, results = await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=services.analysis)
    except TimeoutError:
        raise Overloaded(
            f"the photo took longer than {settings.request_timeout_s:g} s to analyse", headers={"Retry-After": "5"}
        ) from None
    services.metrics.faces.inc(len(results))
    return rgb, results


def model_json(services: Services) -> dict[str, str]:
    _, classifier, _ = services.require_ready()
    return classifier.identity()


@router.post("/predict", response_model=Prediction, responses=ERRORS, openapi_extra=UPLOAD_BODY)
async def predict(
    request: Request,
    services: ServicesDep,
    settings: SettingsDep,
    options: OptionsDep,
) -> dict[str, Any]:
    """Every face in the photo with its box, detection score and emotion probabilities."""
    services.require_ready()
    rgb, results = await analyse(services, await read_image_bytes(request, settings), options)
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
    services.require_ready()
    rgb, results = await analyse(services, await read_image_bytes(request, settings), options)
    encoded = await anyio.to_thread.run_sync(draw, rgb, results, format)
    return Response(encoded, media_type=f"image/{format}", headers={"x-faces": str(len(results))})


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
            rgb, results = await analyse(services, data, options)
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
