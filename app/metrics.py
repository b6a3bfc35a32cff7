"""Prometheus metrics, in a registry owned by the app (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("emotion_requests", "HTTP requests", ["path", "status"], registry=self.registry)
        self.latency = Histogram(
            "emotion_request_seconds",
            "Request latency",
            ["path"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10),
        )
        self.faces = Counter("emotion_faces", "Faces found and classified", registry=self.registry)
        self.errors = Counter("emotion_errors", "Error responses", ["status"], registry=self.registry)
        self.stage = Histogram(
            "emotion_stage_seconds",
            "Wall time of each stage of a photo's analysis (queue: waiting for an analysis slot)",
            ["stage"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5),
        )
        self.batch_size = Histogram(
            "emotion_model_batch_size",
            "Crops per model call",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
