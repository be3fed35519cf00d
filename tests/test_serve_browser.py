"""The web page in headless Chromium (Debian's ``/usr/bin/chromium`` driven by Playwright).

Text streams into the page and equals the API's text for the same seed; an image grid appears; a pasted
or uploaded CSV is parsed (header, dates, missing values) into the forecast request and drawn as a fan
chart; errors show the server's message; the page loads nothing from outside the server.
The forecast answer is stubbed here (the real forecaster is tested in ``test_serve_forecast.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from serve_helpers import chromium, make_image_run, make_text_run, running_server

HORIZON = 6
QUANTILES = {"0.05": [1.0] * HORIZON, "0.25": [2.0] * HORIZON, "0.5": [3.0] * HORIZON, "0.75": [4.0] * HORIZON,
             "0.95": [5.0] * HORIZON}
CSV = "date,visitors\n2024-01-01,10\n2024-01-02,12.5\n2024-01-03,\n2024-01-04,11\n2024-01-05,NA\n2024-01-06,14\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    runs = [make_text_run(root / "tiny-text"), make_image_run(root / "digits")]
    with running_server(runs, root / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, base):
    context = browser.new_context(base_url=base)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    requests: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.requests = requests
    yield pg
    context.close()


def open_page(page, base: str) -> None:
    page.goto("/")
    page.wait_for_selector("body[data-ready='1']")


def test_text_streams_and_equals_api(page, base):
    open_page(page, base)
    page.click("button[data-tab='text']")
    page.select_option("#text-model", "tiny-text")
    page.fill("#prompt", "abc")
    page.fill("#max-tokens", "40")
    page.fill("#text-seed", "5")
    page.click("#generate")
    page.wait_for_selector("#text-status:has-text('done')")
    api_text = httpx.post(f"{base}/v1/generate", json={"model": "tiny-text", "prompt": "abc", "max_new_tokens": 40,
                                                       "seed": 5, "temperature": 1.0}, timeout=60).json()["text"]
    assert page.text_content("#generated") == api_text
    assert page.text_content("#echo") == "abc"
    assert "seed 5" in page.text_content("#text-status")
    assert all(u.startswith(base) for u in page.requests), page.requests  # nothing from outside the server


def test_error_message_is_shown(page, base):
    open_page(page, base)
    page.click("button[data-tab='text']")
    page.fill("#max-tokens", "5000")
    page.click("#generate")
    page.wait_for_selector("#text-status.error")
    assert "max_new_tokens" in page.text_content("#text-status")


def test_image_grid_appears(page, base):
    open_page(page, base)
    page.click("button[data-tab='images']")
    page.select_option("#image-model", "digits")
    page.fill("#num-images", "4")
    page.select_option("#image-class", "3")
    page.click("#sample")
    page.wait_for_function("() => document.getElementById('samples').naturalWidth > 0")
    width = (2 * (8 + 1) + 1) * 8  # a 2x2 grid of 8x8 images, padding 1, upscaled 8x
    assert page.locator("#samples").evaluate("img => img.naturalWidth") == width
    assert page.text_content("#image-status") == "4 samples (seed 0)"
    assert page.locator("#image-class option").count() == 11  # "any" + 10 classes


def stub_forecast(page, base: str) -> list[dict]:
    """Add a time-series model to the model list and answer /v1/forecast with fixed quantiles."""
    sent: list[dict] = []

    def models(route):
        listed = route.fetch().json()
        listed["models"].append({"name": "visits", "kind": "timeseries"})
        route.fulfill(json=listed)

    def forecast(route):
        sent.append(json.loads(route.request.post_data))
        route.fulfill(json={"model": "visits", "horizon": HORIZON, "mean": [3.0] * HORIZON,
                            "median": [3.0] * HORIZON, "quantiles": QUANTILES})

    page.route(f"{base}/v1/models", models)
    page.route(f"{base}/v1/forecast", forecast)
    return sent


def test_pasted_csv_becomes_fan_chart(page, base):
    sent = stub_forecast(page, base)
    open_page(page, base)
    page.click("button[data-tab='forecast']")
    page.fill("#csv", CSV)
    page.fill("#horizon", str(HORIZON))
    page.click("#forecast")
    page.wait_for_selector("svg#fan")
    assert sent == [{"model": "visits", "history": [10, 12.5, None, 11, None, 14], "seed": 0,
                     "horizon": HORIZON, "start": "2024-01-01"}]
    bands = page.locator("svg#fan polygon.band")
    assert bands.count() == 2
    assert {bands.nth(i).get_attribute("data-quantiles") for i in range(2)} == {"0.05-0.95", "0.25-0.75"}
    assert page.locator("svg#fan path.median").get_attribute("data-points") == str(HORIZON)
    assert page.locator("svg#fan path.history").get_attribute("data-points") == "6"
    assert "6 values of \"visitors\"" in page.text_content("#forecast-status")


def test_uploaded_csv_and_bad_csv(page, base, tmp_path: Path):
    sent = stub_forecast(page, base)
    open_page(page, base)
    page.click("button[data-tab='forecast']")
    path = tmp_path / "series.csv"
    path.write_text("3\n4\n5\n")
    page.set_input_files("#csv-file", str(path))
    page.wait_for_function("() => document.getElementById('csv').value.length > 0")
    page.click("#forecast")
    page.wait_for_selector("svg#fan")
    assert sent[-1]["history"] == [3, 4, 5] and "start" not in sent[-1]
    page.fill("#csv", "value\n1\nabc\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n")
    page.click("#forecast")
    page.wait_for_selector("#forecast-status.error")
    assert "row 3" in page.text_content("#forecast-status")
    assert len(sent) == 1  # the bad CSV was never sent
