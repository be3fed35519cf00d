"""``POST /v1/forecast`` and the page's forecast panel with a real (tiny, briefly trained) forecaster.

The server's answer equals ``forecast_from_history`` for the same seed, also when requests with different
seeds run at once (each forecast has its own generator); ``/v1/log_prob`` scores series one step ahead;
bad histories get a 4xx with a message; a CSV pasted into the page becomes a fan chart.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from serve_helpers import chromium, make_text_run, running_server

from chainrule.modalities.series import api as ts_api

HISTORY = [112.0, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118, 115, 126, 141, None, 125, 149, 170, 170,
           158, 133, 114, 140, 145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166]


@pytest.fixture(scope="module")
def ts_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    return ts_api.train_forecaster("airpassengers", "deepar", steps=20, progress=False, run_dir=root / "passengers",
                                   hidden_size=8, num_layers=1)


@pytest.fixture(scope="module")
def base(ts_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast-server")
    with running_server([ts_run.path, make_text_run(root / "tiny-text")], root / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def client(base):
    with httpx.Client(base_url=base, timeout=120) as c:
        yield c


def test_model_listed_with_its_horizon(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["passengers"]["kind"] == "timeseries"
    assert models["passengers"]["horizon"] == 12 and models["passengers"]["freq"] == "MS"


def test_forecast_equals_library(client, ts_run):
    out = client.post("/v1/forecast", json={"history": HISTORY, "horizon": 5, "seed": 3}).json()
    ref = ts_api.forecast_from_history(ts_run, HISTORY, horizon=5, seed=3)
    assert out["model"] == "passengers" and out["horizon"] == 5
    assert out["quantiles"] == ref["quantiles"] and out["median"] == ref["median"]
    q = np.array([out["quantiles"][k] for k in ("0.05", "0.25", "0.5", "0.75", "0.95")])
    assert (np.diff(q, axis=0) >= 0).all()
    default = client.post("/v1/forecast", json={"model": "passengers", "history": HISTORY}).json()
    assert default["horizon"] == 12 and len(default["median"]) == 12


def test_concurrent_forecasts_equal_alone(client, base):
    bodies = [{"history": HISTORY, "horizon": 4, "seed": s, "num_samples": 50} for s in range(6)]

    def run(body):
        with httpx.Client(base_url=base, timeout=120) as c:
            return c.post("/v1/forecast", json=body).json()["quantiles"]

    alone = [run(b) for b in bodies]
    assert alone[0] != alone[1]
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(run, bodies)) == alone


@pytest.mark.parametrize("body,status,needle", [
    ({"history": HISTORY, "horizon": 0}, 422, "horizon"),
    ({"history": [None, None]}, 422, "missing"),
    ({"history": [1.0] * 10_001}, 422, "history"),
    ({"history": ["a", 2.0]}, 422, "history"),
    ({"history": HISTORY, "quantiles": [0.5, 1.5]}, 422, "quantiles"),
    ({"history": HISTORY, "start": "not a date"}, 422, "start"),
    ({"model": "tiny-text", "history": HISTORY}, 400, "text model"),
])
def test_bad_forecast_requests(client, body, status, needle):
    r = client.post("/v1/forecast", json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_log_prob_of_series_equals_library(client, ts_run):
    spiked = HISTORY.copy()
    spiked[30] = 900.0
    out = client.post("/v1/log_prob", json={"series": [HISTORY, spiked]}).json()
    assert out["model"] == "passengers" and out["unit"] == "nats"
    for got, history in zip(out["results"], (HISTORY, spiked), strict=True):
        assert got == ts_api.surprisal_from_history(ts_run, history)
    assert out["results"][0]["surprisal"][15] is None  # the missing value
    spiked_scores = [-1.0 if v is None else v for v in out["results"][1]["surprisal"]]
    assert int(np.argmax(spiked_scores)) == 30


def test_log_prob_of_a_forecaster_needs_series(client):
    r = client.post("/v1/log_prob", json={"model": "passengers", "texts": ["a"]})
    assert r.status_code == 422 and "series" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_page_draws_fan_chart_from_pasted_csv(base):
    csv = "month,passengers\n" + "\n".join(
        f"1958-{m:02d}-01,{'' if v is None else v}" for m, v in zip(range(1, 13), HISTORY[-12:], strict=True))
    with chromium() as browser:
        page = browser.new_page(base_url=base)
        page.set_default_timeout(60_000)
        page.goto("/")
        page.wait_for_selector("body[data-ready='1']")
        page.click("button[data-tab='forecast']")
        page.select_option("#ts-model", "passengers")
        page.fill("#csv", csv)
        page.fill("#horizon", "6")
        page.click("#forecast")
        page.wait_for_selector("svg#fan")
        assert page.locator("svg#fan polygon.band").count() == 2
        assert page.locator("svg#fan path.median").get_attribute("data-points") == "6"
        assert "12 values of \"passengers\"" in page.text_content("#forecast-status")
