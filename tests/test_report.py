"""`sarcube report`: the offline web map, its data, and the page in a real (headless Chromium) browser.

The browser test drives Chromium through the DevTools protocol (a websocket on
127.0.0.1, `websocket-client`): it opens the report from disk (file://),
collects console errors, exceptions and failed loads, takes a screenshot and
asks the page's test hook (`window.sarcubeReport`) what it drew. It skips
only where no `chromium` is installed (`.ci/run` installs the Debian package).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image

from conftest import make_pair_cube
from sarcube.datacube import schema, store
from sarcube.errors import InputError, MissingVariableError
from sarcube.pipelines.cli import main
from sarcube.pipelines.export import export
from sarcube.pipelines.report import ASSET_DIR, DATA_FILE, IMAGE_DIR, INDEX_FILE, report
from test_export import _write_pred

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIEWPORT = (1400, 900)
BROWSER_TIMEOUT_S = 90.0


def _data(site: Path) -> dict:
    text = (site / DATA_FILE).read_text()
    return json.loads(text[text.index("=") + 1 :].strip().rstrip(";"))


@pytest.fixture
def pred_cube(tmp_path):
    ds = make_pair_cube(ny=48, nx=64)
    ds[schema.VV].values[2, 4:8, 3:8] += 8.0  # debris, brighter at pair 0's activity time
    path = tmp_path / "pairs.zarr"
    store.write_cube(ds, path)
    _write_pred(path)
    return path


def test_report_is_a_self_contained_site(pred_cube, tmp_path):
    index = report(pred_cube, "hand", tmp_path / "site")
    site = index.parent
    assert index.name == INDEX_FILE
    html = index.read_text()
    # nothing is loaded from the network: every script and stylesheet is a relative path
    for attr in ("src=", "href="):
        for ref in html.split(attr)[1:]:
            assert not ref.strip("\"'").startswith(("http:", "https:", "//")), ref[:60]
    for asset in ("leaflet/leaflet.js", "leaflet/leaflet.css", "leaflet/LICENSE", "report.js", "report.css"):
        assert (site / ASSET_DIR / asset).is_file(), asset
    assert "BSD" in (site / ASSET_DIR / "leaflet" / "LICENSE").read_text()

    data = _data(site)
    exported = gpd.read_file(export(pred_cube, "hand", tmp_path / "det.geojson"))
    assert len(data["detections"]) == len(exported) == 3
    assert [p["detections"] for p in data["pairs"]] == [2, 1, 0]
    assert [p["predicted"] for p in data["pairs"]] == [True, True, False]
    big = max(data["detections"], key=lambda f: f["properties"]["area_m2"])["properties"]
    ds = schema.open_cube(pred_cube)
    # popups carry the export's attributes plus the mean PAR under the polygon (rows 4..7, columns 3..7)
    assert big["area_m2"] == 20 * 400.0 and big["mean_probability"] == pytest.approx(0.9)
    assert big["par_deg"] == pytest.approx(float(ds[schema.PAR][4:8, 3:8].mean()), abs=0.05)
    assert big["slope_deg"] == pytest.approx(float(ds[schema.SLOPE][4:8, 3:8].mean()), abs=0.05)
    assert data["labels"] and {f["properties"]["pair_index"] for f in data["labels"]} <= {0, 1, 2}
    # provenance: the prediction's attrs, the acquisitions, the cube's grid
    assert ["threshold", "0.5"] in data["provenance"]["prediction"]
    assert len(data["provenance"]["acquisitions"]) == ds.sizes[schema.TIME]
    # images at display resolution: hillshade and one composite per pair
    assert Image.open(site / data["hillshade"]).size == (64, 48)
    for pair in data["pairs"]:
        with Image.open(site / pair["composite"]) as png:
            assert png.size == (64, 48) and png.mode == "P"
    # labels but no run to take the split from: the page says why it shows no scores
    assert data["evaluation"]["rows"] == [] and "run" in data["evaluation"]["note"]


def test_large_scenes_are_subsampled_and_reports_replaced(pred_cube, tmp_path):
    site = report(pred_cube, "pred_hand", tmp_path / "site", max_display_px=16).parent
    data = _data(site)
    assert data["display"]["step"] == 4
    assert Image.open(site / data["hillshade"]).size == (16, 12)
    west, south, east, north = data["bounds"]
    assert (east - west, north - south) == (64 * 20.0, 48 * 20.0)
    stale = site / IMAGE_DIR / "stale.png"
    stale.write_bytes(b"x")
    report(pred_cube, "hand", site, threshold=0.75)  # an earlier report is replaced whole
    assert not stale.exists() and len(_data(site)["detections"]) == 1


def test_evaluation_table_from_an_evaluate_json(pred_cube, tmp_path):
    scores = {"f1": 0.5, "precision": 0.25, "recall": 1.0, "object_tp": 3, "threshold": 0.5, "split": "pairs [2]"}
    evaluation = {"split": "test", "scored_on": "pixels", "columns": ["f1", "precision", "recall", "object_tp"],
                  "predictions": {"pred_hand": scores, "pred_other": {**scores, "f1": float("nan")}}}
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(evaluation))
    data = _data(report(pred_cube, "hand", tmp_path / "site", evaluation=path).parent)
    table = data["evaluation"]
    assert table["columns"] == ["F1 (%)", "Precision (%)", "Recall (%)", "TP (#)"]
    cells = ["50.00", "25.00", "100.00", "3"]
    assert table["rows"][0] == {"method": "hand", "this": True, "cells": cells, "threshold": 0.5}
    assert table["rows"][1]["cells"][0] == "-" and "test split" in table["note"]


def test_bad_inputs_name_the_fix(pred_cube, tmp_path):
    with pytest.raises(MissingVariableError, match="pred_hand"):
        report(pred_cube, "other", tmp_path / "a")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        report(pred_cube, "hand", busy)
    assert (busy / "notes.txt").exists()
    with pytest.raises(InputError, match="evaluate"):
        report(pred_cube, "hand", tmp_path / "b", evaluation=tmp_path / "missing.json")
    assert not (tmp_path / "b").exists()


def test_cli_writes_the_report(pred_cube, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["report", str(pred_cube), "--pred", "hand", "--out", str(out)]) == 0
    assert str(out / INDEX_FILE) in capsys.readouterr().out


# --- in a real browser --------------------------------------------------------------------------------


class DevTools:
    """Headless Chromium and one page, driven through the DevTools protocol on 127.0.0.1."""

    def __init__(self, profile: Path):
        import websocket

        profile.mkdir(parents=True, exist_ok=True)
        (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a stale one names a closed port
        args = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.events: list[dict] = []
        self._id = 0
        try:
            port = self._wait_port(profile / "DevToolsActivePort")
            pages = self._wait_pages(port)
            url = pages[0]["webSocketDebuggerUrl"]
            self.ws = websocket.create_connection(url, timeout=BROWSER_TIMEOUT_S, suppress_origin=True)
        except BaseException:
            self.close()
            raise

    def _wait_port(self, path: Path) -> int:
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while time.monotonic() < deadline:
            if path.exists() and path.read_text().strip():
                return int(path.read_text().split()[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode} before opening DevTools")
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def _wait_pages(self, port: int) -> list[dict]:
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                    pages = [t for t in json.load(response) if t.get("type") == "page"]
            except OSError:  # not listening yet
                pages = []
            if pages:
                return pages
            time.sleep(0.1)
        raise TimeoutError("chromium opened no page")

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = BROWSER_TIMEOUT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"page never made {expression!r} true")

    def screenshot(self) -> np.ndarray:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads the page reported so far."""
        self.evaluate("1")  # drain events queued before now
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params["exceptionDetails"])[:400])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.call("Browser.close")
            except Exception:  # noqa: BLE001 - the browser may close the socket first
                pass
            ws.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run does it)")
    devtools = DevTools(tmp_path / "chromium-profile")
    yield devtools
    devtools.close()


def _map_pixels(shot: np.ndarray, browser: DevTools) -> np.ndarray:
    box = browser.evaluate("(() => { const r = document.getElementById('map').getBoundingClientRect(); "
                           "return [r.left, r.top, r.right, r.bottom].map(Math.round); })()")
    left, top, right, bottom = box
    return shot[top:bottom, left:right]


def test_report_in_headless_chromium(pred_cube, tmp_path, browser):
    index = report(pred_cube, "hand", tmp_path / "site")
    exported = gpd.read_file(export(pred_cube, "hand", tmp_path / "det.geojson"))
    for domain in ("Runtime", "Log", "Page"):
        browser.call(f"{domain}.enable")
    width, height = VIEWPORT
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    browser.call("Page.navigate", url=index.resolve().as_uri())
    browser.wait_for("window.sarcubeReport && window.sarcubeReport.ready")
    loaded = "Array.from(document.querySelectorAll('#map img')).every(i => i.complete && i.naturalWidth > 0)"
    browser.wait_for(loaded)

    # the whole scene is in view at first, at a fitting scale (zoom 0 is 1 m per screen pixel)
    assert browser.evaluate("window.sarcubeReport.sceneInView()")
    assert 0.5 < browser.evaluate("window.sarcubeReport.metresPerPixel()") < 5.0

    # the map rendered: the map area of the screenshot shows hillshade, composite and polygons, not a blank
    shot = browser.screenshot()
    Image.fromarray(shot).save(tmp_path / "report.png")
    area = _map_pixels(shot, browser)
    assert area.shape[0] > 300 and area.shape[1] > 600
    assert area.std() > 20 and len(np.unique(area.reshape(-1, 3), axis=0)) > 200

    # every exported polygon is in the page, and each pair draws its own
    hook = "window.sarcubeReport"
    assert browser.evaluate(f"{hook}.polygonCount()") == len(exported)
    drawn = {}
    for p in range(browser.evaluate(f"{hook}.pairCount()")):
        assert browser.evaluate(f"{hook}.setPair({p})") == p
        drawn[p] = browser.evaluate(f"{hook}.renderedPolygonCount()")
    assert drawn == {p: int((exported["pair_index"] == p).sum()) for p in drawn}
    assert sum(drawn.values()) == len(exported)

    # switching the date switches the overlay: another image, loaded, and other pixels on screen
    browser.evaluate(f"{hook}.setPair(0)")
    browser.wait_for(loaded)
    before_src, before = browser.evaluate(f"{hook}.overlaySrc()"), _map_pixels(browser.screenshot(), browser)
    assert browser.evaluate(f"{hook}.labelCount()") > 0
    browser.evaluate(f"{hook}.setPair(1)")
    browser.wait_for(loaded)
    after_src, after = browser.evaluate(f"{hook}.overlaySrc()"), _map_pixels(browser.screenshot(), browser)
    assert before_src.endswith("composite_pair000.png") and after_src.endswith("composite_pair001.png")
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 2

    # a table row zooms the map to its detection and highlights it
    zoom = browser.evaluate(f"{hook}.zoom()")
    browser.evaluate("document.querySelector('#detections tbody tr').click()")
    first_of_pair = int(exported.loc[exported["pair_index"] == 1, "detection_id"].iloc[0])
    assert browser.evaluate(f"{hook}.highlighted()") == first_of_pair
    browser.wait_for(f"{hook}.zoom() > {zoom}")  # after the zoom animation
    assert browser.evaluate("document.querySelector('#detections tbody tr').classList.contains('highlight')")

    assert browser.errors() == []
