"""Service settings, read from EMOTION_* environment variables (see the README's settings table)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "model" / "emotion"


def newest_version(root: Path) -> Path:
    """The highest numbered version folder under ``root`` (TF Serving's layout), or ``root`` itself."""
    versions = sorted((p for p in root.glob("*") if p.name.isdigit() and p.is_dir()), key=lambda p: int(p.name))
    return versions[-1] if versions else root


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMOTION_", env_file=".env", extra="ignore")

    model_dir: Path = Field(default_factory=lambda: newest_version(SHIPPED_MODELS))
    runtime: Literal["auto", "savedmodel", "tflite", "openvino"] = "auto"
    detector_runtime: Literal["auto", "opencv", "tflite", "openvino"] = "auto"
    max_upload_bytes: int = Field(10 * 2**20, gt=0)
    max_pixels: int = Field(40_000_000, gt=0)
    max_faces: int = Field(50, gt=0)
    max_batch_files: int = Field(16, gt=0)
    detection_threshold: float = Field(0.5, ge=0, le=1)
    min_face_size: int = Field(24, ge=1)
    # 0.08: of 0-0.2, the margin whose crops of FER2013 val faces found by the detector score best (0.7-2.0 points
    # over 0.15 at every face size measured; python -m benchmarks.framing)
    face_margin: float = Field(0.08, ge=0, le=1)
    # Faces tilted further than this (degrees, from BlazeFace's eye keypoints) are turned upright before they are
    # classified; FER2013's own faces lean -12 to +12 degrees (10th to 90th percentile), so the classifier knows small
    # tilts (benchmarks.framing --tilt); 180 turns none
    max_roll: float = Field(10.0, ge=0, le=180)
    batch_max_size: int = Field(32, gt=0)
    batch_max_wait_ms: float = Field(2.0, ge=0)
    queue_size: int = Field(256, gt=0)
    # Photos in analysis at once (decoding, detection, or waiting for the classifier); the rest wait their turn in
    # arrival order, which keeps the tail (p99) short under load: past a few per core they only share the CPU, so
    # every photo in progress slows down together.
    analysis_concurrency: int = Field(default_factory=lambda: 8 * (os.cpu_count() or 1), gt=0)
    # Of those, photos decoded and detected at once. The others have their crops waiting for the classifier, so its
    # batches grow while detection goes on (three alternating pairs at c=32 against stop 33's 8 photos that held
    # their slot through classification: 158-174 against 137-149 req/s, p99 262-269 against 274-360 ms).
    detection_concurrency: int = Field(default_factory=lambda: 2 * (os.cpu_count() or 1), gt=0)
    request_timeout_s: float = Field(30.0, gt=0)
    log_level: str = "info"
    cors_origins: list[str] = []
    api_key: SecretStr | None = None
