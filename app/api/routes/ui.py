"""GET /: a page to try the service in a browser."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["page"])
PAGE = Path(__file__).resolve().parents[2] / "static" / "index.html"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    """The try-it page."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))
