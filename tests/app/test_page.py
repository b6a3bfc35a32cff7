"""The try-it page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, jpeg_bytes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]
SCREENSHOTS = ROOT / "reports" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


def test_uploading_a_photo_shows_one_box_with_the_top_emotion(browser, server: str, astronaut, tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(jpeg_bytes(astronaut))
    expected = httpx.post(f"{server}/predict", files={"file": ("a.jpg", photo.read_bytes(), "image/jpeg")}).json()
    page = browser.new_page()
    page.goto(f"{server}/")
    page.get_by_label("Choose a photo").set_input_files(str(photo))
    page.wait_for_selector(".box")
    assert page.locator(".box").count() == 1
    assert page.locator(".box .label").inner_text() == expected["faces"][0]["dominant_emotion"]
    assert re.fullmatch(r"1 face found \(\d+\.\d ms on the server\)\.", page.locator("#status").inner_text())
    assert page.locator(".bar").count() == 7
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "astronaut.png"), full_page=True)
    page.close()


def test_a_file_that_is_not_an_image_shows_a_clear_message(browser, server: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")
    page = browser.new_page()
    page.goto(f"{server}/")
    page.get_by_label("Choose a photo").set_input_files(str(notes))
    page.wait_for_selector("#status.error")
    assert "not an image" in page.locator("#status").inner_text()
    page.close()


def test_the_page_fits_a_phone_and_is_keyboard_reachable(browser, server: str) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 740})
    page.goto(f"{server}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "snap"
    page.close()
