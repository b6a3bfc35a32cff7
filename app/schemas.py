"""Response bodies, as they appear in the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Box(BaseModel):
    x: int
    y: int
    width: int
    height: int


class FaceResult(BaseModel):
    box: Box
    score: float = Field(description="face detection score, 0..1")
    emotions: dict[str, float] = Field(description="probability per emotion; sums to 1")
    dominant_emotion: str


class ImageInfo(BaseModel):
    width: int
    height: int


class ModelInfo(BaseModel):
    name: str
    version: str
    runtime: str


class Prediction(BaseModel):
    faces: list[FaceResult]
    image: ImageInfo
    model: ModelInfo


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class BatchItem(BaseModel):
    filename: str | None = None
    faces: list[FaceResult] | None = None
    image: ImageInfo | None = None
    error: ErrorDetail | None = None


class BatchPrediction(BaseModel):
    results: list[BatchItem]
    model: ModelInfo


class Status(BaseModel):
    status: str
