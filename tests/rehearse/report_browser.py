"""Opens a rehearsal's report.html in Debian's Chromium, as its reader would: every request
but the file itself refused, the plots measured, a full-page screenshot kept in
test-artifacts/screenshots and checked not to be blank."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PAGE_TIMEOUT_MS = 20_000

FIND_PLOTS_JS = """() => [...document.querySelectorAll('svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  return {id: svg.getAttribute('aria-labelledby'), width: box.width, height: box.height,
          shapes: svg.querySelectorAll('rect, polyline, polygon, circle').length};
})"""
PIXEL_SPREAD_JS = """async (png) => {
  const image = new Image();
  image.src = 'data:image/png;base64,' + png;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, image.width, image.height).data;
  let sum = 0, squares = 0, n = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const grey = (pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3;
    sum += grey; squares += grey * grey; n += 1;
  }
  const mean = sum / n;
  return {mean, variance: squares / n - mean * mean};
}"""


@dataclass
class Drawn:
    url: str
    requests: list[str]
    problems: list[str]
    plots: list[dict[str, Any]]
    spread: dict[str, float]


def draw_report(html: Path, artifact_name: str) -> Drawn:
    if not CHROMIUM.is_file():
        pytest.fail("Chromium is needed: `make system-test-deps` installs it")
    from playwright.sync_api import sync_playwright

    url = html.as_uri()
    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], timeout=30_000
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.route(
                "**/*",
                lambda route: route.abort() if route.request.url != url else route.continue_(),
            )
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            page.goto(url)
            plots = page.evaluate(FIND_PLOTS_JS)
            png = page.screenshot(path=str(html.with_suffix(".png")), full_page=True)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / artifact_name).write_bytes(png)
            blank = browser.new_page()
            spread = blank.evaluate(PIXEL_SPREAD_JS, base64.b64encode(png).decode())
        finally:
            browser.close()
    return Drawn(url, requests, problems, plots, spread)


def assert_drawn_whole(drawn: Drawn, *, plots_at_least: int) -> None:
    assert drawn.requests == [drawn.url]
    assert drawn.problems == []
    assert len(drawn.plots) >= plots_at_least, drawn.plots
    for plot in drawn.plots:
        assert plot["width"] > 300, plot
        assert plot["height"] > 50, plot
        assert plot["shapes"] > 0, plot
    assert drawn.spread["variance"] > 500, drawn.spread  # text and plots, not a blank page
