"""Liveness, readiness, metrics and the model card."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import ServicesDep
from app.schemas import Status

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Status)
async def healthz() -> dict[str, str]:
    """Alive: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Status, responses={503: {"model": Status}})
async def readyz(services: ServicesDep) -> Any:
    """Ready: the model is loaded and warmed (503 before)."""
    if services.ready:
        return {"status": "ready"}
    status = "failed" if services.load_error else "loading"
    return JSONResponse({"status": status}, status_code=503, headers={"Retry-After": "2"})


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics: requests, latency, faces, errors, model batch sizes."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/model")
async def model_card(services: ServicesDep) -> dict[str, Any]:
    """The served model's card: classes, input, training data, validation metrics, runtime, device and cropping."""
    predictor, classifier, _ = services.require_ready()
    detector = predictor.detector
    return {
        **classifier.card,
        "serving": {
            "runtime": classifier.runtime,
            "device": classifier.device,
            "model_dir": classifier.model_dir.name,
            "runtime_timings_ms": classifier.timings,
            "detector_runtime": detector.runtime,
            "detector_timings_ms": detector.timings,
            "crop": {"margin": predictor.margin, "max_roll": predictor.max_roll},
        },
    }
