"""The viewer in a real headless Chromium: every page type, the XSS probe, large steps, screenshots.

Screenshots go to test-artifacts/ (kept by CI as artefacts; git-ignored).
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.conftest import ARTIFACTS, open_page
from tests.logview.conftest import BIG_TOKENS, XSS


def css(browser, selector):
    return browser.find_elements(By.CSS_SELECTOR, selector)


def no_errors(browser):
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_overview(browser, viewer_url):
    open_page(browser, viewer_url + "#/")
    rows = css(browser, "#steps tbody tr")
    assert [(r.get_attribute("data-kind"), r.get_attribute("data-step")) for r in rows] == [
        ("val", "0"),
        ("train", "1"),
        ("train", "2"),
        ("val", "2"),
    ]
    assert [r.find_element(By.CSS_SELECTOR, ".reward").text for r in rows] == ["0.250", "0.400", "0.600", "0.750"]
    charts = {c.get_attribute("data-chart") for c in css(browser, ".chart")}
    assert {"reward_mean", "success_rate", "madness_rate", "tool_use_rate", "turns_per_episode"} <= charts
    assert len(css(browser, ".chart[data-chart=reward_mean] polyline")) == 2  # train and validation
    assert "experiment_name: viewer" in browser.find_element(By.ID, "config").get_attribute("textContent")
    assert not browser.find_element(By.ID, "live").is_displayed()  # no run holds the folder
    browser.save_screenshot(str(ARTIFACTS / "logview_overview.png"))
    no_errors(browser)


def test_step_page_groups_filters_and_sorts(browser, viewer_url):
    open_page(browser, viewer_url + "#/step/train/1")
    episodes = css(browser, "tr.episode")
    assert len(episodes) == 7
    groups = [g.text for g in css(browser, "tr.group")]
    assert any(g.startswith("task task-a") and "3 scored, mean reward 0.333" in g for g in groups)
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-episode="s1-a-r0"]')
    assert row.find_element(By.CSS_SELECTOR, ".reward").text == "1.000"
    assert row.find_element(By.CSS_SELECTOR, ".advantage").text == "1.150"
    failed = browser.find_element(By.CSS_SELECTOR, 'tr[data-episode="s1-fail-r0"]')
    assert "failed" in failed.text and "RuntimeError: the tool server is down" in failed.text
    assert "nonsense" in browser.find_element(By.CSS_SELECTOR, 'tr[data-episode="s1-mad-r0"]').text
    browser.save_screenshot(str(ARTIFACTS / "logview_step.png"))

    Select(browser.find_element(By.ID, "filter-status")).select_by_value("failed")
    wait_rows(browser, 1)
    assert css(browser, "tr.episode")[0].get_attribute("data-episode") == "s1-fail-r0"

    open_page(browser, viewer_url + "#/step/train/1?sort=reward&order=desc")
    rewards = [r.find_element(By.CSS_SELECTOR, ".reward").text for r in css(browser, "tr.episode")]
    assert rewards[:2] == ["1.000", "1.000"] and rewards[-1] == "–"  # the failed episode has no reward
    no_errors(browser)


def wait_rows(browser, n, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if browser.execute_script("return document.body.dataset.ready") == "1" and len(css(browser, "tr.episode")) == n:
            return
        time.sleep(0.05)
    raise AssertionError(f"expected {n} rows, found {len(css(browser, 'tr.episode'))}")


def test_large_step_is_paged(browser, viewer_url):
    open_page(browser, viewer_url + "#/step/train/2")
    assert len(css(browser, "tr.episode")) == 100
    assert browser.find_element(By.ID, "range").text == "1–100 of 1000"
    browser.find_element(By.ID, "next").click()
    wait_rows(browser, 100)
    assert browser.find_element(By.ID, "range").text == "101–200 of 1000"


def test_episode_page(browser, viewer_url):
    open_page(browser, viewer_url + "#/episode/train/1/s1-tool-r0")
    assert browser.find_element(By.ID, "episode-reward").text == "1.000"
    calls = css(browser, "#calls tbody tr")
    assert [c.get_attribute("data-call") for c in calls] == ["0", "1"]
    assert "drift" in calls[1].find_element(By.CSS_SELECTOR, ".badge").get_attribute("class")
    conversation = browser.find_element(By.ID, "conversation")
    roles = [r.text.lower() for r in conversation.find_elements(By.CSS_SELECTOR, ".role")]
    assert roles[:3] == ["user", "assistant", "tool · execute_python_code"] and roles[-1] == "assistant"
    assert "execute_python_code(" in conversation.find_element(By.CSS_SELECTOR, ".toolcall").text
    assert "The answer is \\boxed{391}." in conversation.text
    browser.save_screenshot(str(ARTIFACTS / "logview_episode.png"))
    no_errors(browser)


def colour(browser, element):
    return browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", element)


def test_sample_page_shows_every_token_with_its_mask(browser, viewer_url, records):
    from astuner.logview.records import ExperimentRecords

    expected = ExperimentRecords(records).sample_page("train", 1, "s1-tool-r0", 0)
    open_page(browser, viewer_url + "#/sample/train/1/s1-tool-r0/0")
    chips = css(browser, "#tokens .tok")
    mask, n_prompt = expected["tokens"]["mask"], expected["prompt_length"]
    assert len(chips) == len(mask)
    trained = css(browser, "#tokens .tok.trained")
    masked = css(browser, "#tokens .tok.masked")
    prompt = css(browser, "#tokens .tok.prompt")
    assert len(trained) == sum(mask) and len(prompt) == n_prompt and len(masked) == len(mask) - n_prompt - sum(mask)
    assert browser.find_element(By.ID, "trained-count").text == str(sum(mask))
    # trained, masked and prompt tokens are told apart by colour; logprob shades trained tokens
    assert len({colour(browser, trained[0]), colour(browser, masked[0]), colour(browser, prompt[0])}) == 3
    sure = [c for c in trained if "lp0" in c.get_attribute("class")]
    unsure = [c for c in trained if "lp4" in c.get_attribute("class")]
    assert sure and unsure and colour(browser, sure[0]) != colour(browser, unsure[0])
    tip = trained[0].get_attribute("title")
    assert f"id {expected['tokens']['id'][n_prompt]}" in tip and "logprob -0.0500" in tip and "trained" in tip
    markers = css(browser, "#tokens .marker")
    assert [m.text for m in markers] == ["call 0", "merge · call 1 · drift 2 · spliced 1"]
    assert "drift" in markers[1].get_attribute("class")
    browser.execute_script("arguments[0].scrollIntoView()", markers[0])
    browser.save_screenshot(str(ARTIFACTS / "logview_sample.png"))
    no_errors(browser)


def test_ten_thousand_token_sample_renders_lazily(browser, viewer_url):
    open_page(browser, viewer_url + "#/sample/train/2/s2-big-r0/0")
    box = browser.find_element(By.ID, "tokens")
    total = int(box.get_attribute("data-total"))
    assert total > BIG_TOKENS
    assert int(box.get_attribute("data-rendered")) < total  # first chunk only
    browser.find_element(By.ID, "render-all").click()
    assert len(css(browser, "#tokens .tok")) == total


@pytest.mark.parametrize("route", ["#/step/train/1", "#/episode/train/1/s1-xss-r0", "#/sample/train/1/s1-xss-r0/0"])
def test_trajectory_text_never_runs(browser, viewer_url, route):
    open_page(browser, viewer_url + route)
    assert browser.execute_script("return window.__xss === undefined")
    assert not css(browser, "#app script") and not css(browser, "#app img")
    assert "<script>window.__xss = 1</script>" in browser.find_element(By.ID, "app").text
    if "episode" in route:
        assert XSS in browser.find_element(By.ID, "episode-error").text


def test_a_missing_episode_shows_an_error(browser, viewer_url):
    open_page(browser, viewer_url + "#/episode/train/1/nope")
    assert "no episode 'nope'" in browser.find_element(By.ID, "load-error").text
