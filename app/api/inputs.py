"""What a predict request brings: its query options (unknown ones refused) and the photo's bytes from any of the
three body forms."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from app.config import Settings
from app.deps import SettingsDep
from app.errors import InvalidInput, InvalidParameters, UnsupportedMediaType
from app.images import decode_base64

Threshold = Annotated[float | None, Query(ge=0.0, le=1.0, description="face detection score threshold")]
MinSize = Annotated[
    int | None,
    Query(
        ge=1,
        le=100_000,
        description="smallest face width in pixels; against busy backgrounds faces from ~1.3x this width are found "
        "reliably (the search costs more the smaller it is)",
    ),
]
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
