"""The FastAPI application: ``uvicorn app.main:app``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api.routes import health, predict, ui
from app.config import Settings
from app.errors import install_handlers
from app.middleware import Guard
from app.services import Services


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
        services.analysis = anyio.CapacityLimiter(settings.analysis_concurrency)
        services.detection = anyio.CapacityLimiter(settings.detection_concurrency)
        services.start_loading()
        yield
        services.close()

    app = FastAPI(
        title="Emotion recognition",
        version="1.0.0",
        summary="Finds every face in a photo and returns the probabilities of seven emotions per face.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_handlers(app)
    for router in (predict.router, health.router, ui.router):
        app.include_router(router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["x-request-id", "x-faces", "x-process-ms", "server-timing"],
        )
    app.add_middleware(Guard, services=services)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the app on first access, so importing this module does no work.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
