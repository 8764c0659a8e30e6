"""The pages in headless Chromium against a real pipeline: collector → Kafka → consumer → Redis → API.

Collector, consumer and API run in this process (threads, ephemeral ports) on private topics, Redis key
prefix and Pub/Sub channel prefix. The test clicks the player's buttons and watches the dashboard's click
count move by exactly the number of clicks; screenshots go to tests/artifacts/e2e/.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from clickpulse.settings import PROJECT_ROOT
from clickpulse.stack.browser import ensure_chromium
from serving.app import create_app as create_api
from streaming.collector.app import create_app as create_collector
from streaming.keyspace import Keyspace, write_video_metadata
from streaming.replay import write_to_kafka
from streaming.simulator import SimulationConfig, Simulator, backfill_window
from tests.serving_support import ConsumerThread, Private, ServerThread, cleanup, private_settings

pytestmark = pytest.mark.browser

ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts" / "e2e"
READ_KEY = "test-read-key"
BUTTONS = ("play", "seek_forward", "like", "skip_intro", "subtitles", "add_to_list", "share", "pause")


@dataclass
class Stack:
    private: Private
    api: ServerThread
    collector: ServerThread
    consumer: ConsumerThread
    titles: dict[str, str]
    top_video: str


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, redis_url: str) -> Iterator[Stack]:
    private = private_settings(kafka_bootstrap, redis_url, "e2e")
    settings = private.settings
    started: list[Any] = []
    try:
        start, end = backfill_window(2)
        sim = Simulator(SimulationConfig(events=1500, seed=5, start=start, end=end, users=100, videos=25))
        records = list(sim)
        assert write_to_kafka(records, {"bootstrap.servers": kafka_bootstrap}, settings.topic_raw, True).ok
        titles = {v.video_id: v.title for v in sim.dimensions.videos}
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        write_video_metadata(
            client,
            [{"video_id": v, "title": t, "duration_s": 1800} for v, t in titles.items()],
            keyspace=Keyspace.from_settings(settings),
        )
        client.close()
        consumer = ConsumerThread(settings, batch_size=200).start()
        started.append(consumer)
        consumer.wait_for(len(records))
        collector = ServerThread(create_collector(settings)).start()
        started.append(collector)
        api = ServerThread(create_api(settings)).start()
        started.append(api)
        top_video = sim.truth.top_videos(1)[0][0]
        yield Stack(private, api, collector, consumer, titles, top_video)
    finally:
        for component in reversed(started):
            component.stop()
        cleanup(private)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium, chromedriver = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1440,900",
    ):
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory(prefix="clickpulse-chromium-")
    options.add_argument(f"--user-data-dir={profile.name}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def _wait(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout_s: float, what: str) -> Any:
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.05).until(condition)
    except Exception as exc:
        _screenshot(driver, f"failed-{what.replace(' ', '-')}")
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}") from exc


def _screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _text(driver: WebDriver, element_id: str) -> str:
    """The element's rendered text, read in one script call: the pages re-render their live parts, so a
    WebElement found a moment earlier may already be stale."""
    return str(driver.execute_script("return document.getElementById(arguments[0]).innerText", element_id))


def _texts(driver: WebDriver, selector: str) -> list[str]:
    script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText)"
    return [str(t) for t in driver.execute_script(script, selector)]


def _number(driver: WebDriver, element_id: str) -> int | None:
    text = _text(driver, element_id).replace(",", "").strip()
    return int(text) if text.isdigit() else None


def _severe_errors(driver: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_player_clicks_show_on_the_dashboard(stack: Stack, browser: webdriver.Chrome) -> None:
    api = stack.api.url
    browser.get(f"{api}/dashboard?key={READ_KEY}")
    before = _wait(browser, lambda d: _number(d, "total-clicks"), 15, "dashboard's first snapshot")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#top-videos tr"), 5, "top videos")
    top_titles = _texts(browser, "#top-videos td.title")
    assert any(title.startswith(t) for title in top_titles for t in stack.titles.values())
    dashboard = browser.current_window_handle

    browser.switch_to.new_window("tab")
    player_url = (
        f"{api}/player?key={READ_KEY}&user_id=e2e-user&video_id={stack.top_video}"
        f"&collector={stack.collector.url}"
    )
    browser.get(player_url)
    _wait(browser, lambda d: _number(d, "accepted-count") == 1, 15, "the player's impression to be accepted")
    assert browser.find_element(By.ID, "video-title").text == stack.titles[stack.top_video]
    for button in BUTTONS:
        browser.find_element(By.CSS_SELECTOR, f'[data-button="{button}"]').click()
    # 8 clicks, 1 impression, 1 conversion (add_to_list) accepted by the collector.
    accepted = len(BUTTONS) + 2
    _wait(browser, lambda d: _number(d, "accepted-count") == accepted, 15, "the clicks to be accepted")
    clicked_at = time.monotonic()
    # The consumer publishes each counted click on the user's channel; the player shows it.
    _wait(browser, lambda d: "e2e-user" in _text(d, "user-log"), 15, "the user channel")
    assert "like" in _text(browser, "user-log")
    _screenshot(browser, "player")
    assert _severe_errors(browser) == []

    browser.switch_to.window(dashboard)
    expected = before + len(BUTTONS)
    _wait(browser, lambda d: _number(d, "total-clicks") == expected, 10, "the dashboard to count the clicks")
    seconds = time.monotonic() - clicked_at
    like_row = '#ctr-button tr[data-button="like"]'
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, like_row), 5, "the button table")
    _wait(browser, lambda d: "like" in _text(d, "ticker"), 5, "the click ticker")
    time.sleep(1.0)  # let the chart draw a few points for the screenshot
    _screenshot(browser, "dashboard")
    assert _severe_errors(browser) == []
    assert seconds < 10


def test_dashboard_asks_for_a_key(stack: Stack, browser: webdriver.Chrome) -> None:
    browser.switch_to.new_window("tab")
    browser.get(f"{stack.api.url}/dashboard?key=not-a-key")
    form = _wait(browser, lambda d: d.find_element(By.ID, "key-form").is_displayed(), 10, "the key form")
    assert form
    assert "refused" in browser.find_element(By.ID, "key-form").text
