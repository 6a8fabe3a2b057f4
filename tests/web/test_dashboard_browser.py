"""End-to-end tests of the dashboard in headless Chromium against a running server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import BrowserPage, ThreadedServer, screenshot
from dashboard_stub_api import make_stub_app

pytestmark = pytest.mark.browser

API_KEY = "test-key-123"


class Line:
    """The server under test, seen only through its HTTP API (as the dashboard sees it)."""

    def __init__(self, server: ThreadedServer, state: dict) -> None:
        self.server = server
        self.base_url = server.base_url
        self.api_key = API_KEY
        self._state = state
        self.http = httpx.Client(base_url=server.base_url, timeout=10)

    def seed(self, defects: list[tuple[str, list[float]]]) -> dict[str, Any]:
        return dict(self._state["seed"](defects))

    def inspection(self, inspection_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/inspections/{inspection_id}")
        response.raise_for_status()
        return dict(response.json())

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/api/v1/stats")
        response.raise_for_status()
        return dict(response.json())


@pytest.fixture
def line() -> Iterator[Line]:
    app, state = make_stub_app(API_KEY)
    with ThreadedServer(app) as server:
        yield Line(server, state)


def review_of(defect: dict[str, Any]) -> dict[str, Any] | None:
    return defect.get("review")


def test_live_view_lists_inspections_with_loaded_overlays(line: Line, browser_page: BrowserPage) -> None:
    first = line.seed([("short", [100, 100, 140, 130])])
    second = line.seed([])
    page = browser_page.page
    page.goto(line.base_url + "/")
    page.wait_for_selector(f'.inspection-card[data-id="{second["id"]}"]')
    page.wait_for_function("[...document.querySelectorAll('.inspection-card img')].every(i => i.complete && i.naturalWidth > 0)")
    widths = page.eval_on_selector_all(".inspection-card img.overlay", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [640, 640]
    assert page.inner_text(f'.inspection-card[data-id="{first["id"]}"] .badge') == "FAIL"
    assert page.inner_text(f'.inspection-card[data-id="{second["id"]}"] .badge') == "PASS"
    assert "5.5 ms" in page.inner_text(f'.inspection-card[data-id="{first["id"]}"] .timings')

    third = line.seed([("open", [10, 10, 30, 30])])  # arrives while the page is open: polling must show it
    page.wait_for_selector(f'.inspection-card[data-id="{third["id"]}"]', timeout=5000)
    ids = page.eval_on_selector_all(".inspection-card", "cards => cards.map(c => c.dataset.id)")
    assert ids == [third["id"], second["id"], first["id"]]
    screenshot(browser_page, "live-view")
    assert browser_page.errors == []


def test_review_queue_keyboard_confirm_reject_reclassify(line: Line, browser_page: BrowserPage) -> None:
    inspection = line.seed([("short", [100, 100, 140, 130]), ("open", [300, 300, 330, 360]), ("spur", [500, 200, 520, 230])])
    page = browser_page.page
    page.goto(line.base_url + "/#review")
    page.fill("#api-key", line.api_key)
    page.press("#api-key", "Enter")
    assert page.inner_text("#key-state") == "key stored"

    defect_ids = [d["id"] for d in inspection["defects"]]
    page.wait_for_function(f"document.getElementById('review-crop').dataset.drawn === '{defect_ids[0]}'")
    # The crop must show pixels of the board, not an empty canvas.
    lit = page.evaluate(
        "() => { const c = document.getElementById('review-crop');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 150) n++; return n; }"
    )
    assert lit > 1000
    screenshot(browser_page, "review-queue")

    page.keyboard.press("c")
    page.wait_for_function(f"document.getElementById('review-crop').dataset.drawn === '{defect_ids[1]}'")
    page.keyboard.press("x")
    page.wait_for_function(f"document.getElementById('review-crop').dataset.drawn === '{defect_ids[2]}'")
    page.keyboard.press("3")
    page.wait_for_selector("#review-empty:not([hidden])")

    reviews = [review_of(d) for d in line.inspection(inspection["id"])["defects"]]
    assert [r and r["status"] for r in reviews] == ["confirmed", "false_call", "reclassified"]
    assert reviews[2] and reviews[2]["reviewed_type"] == "mousebite"
    assert browser_page.errors == []


def test_review_arrow_keys_move_without_deciding(line: Line, browser_page: BrowserPage) -> None:
    inspection = line.seed([("short", [100, 100, 140, 130]), ("open", [300, 300, 330, 360])])
    first, second = (d["id"] for d in inspection["defects"])
    page = browser_page.page
    page.goto(line.base_url + "/#review")
    page.wait_for_function(f"document.getElementById('review-crop').dataset.drawn === '{first}'")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('review-crop').dataset.drawn === '{second}'")
    assert "defect 2 of 2" in page.inner_text("#review-position")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"document.getElementById('review-crop').dataset.drawn === '{first}'")
    assert all(review_of(d) is None for d in line.inspection(inspection["id"])["defects"])


def test_review_without_key_shows_the_401_and_writes_nothing(line: Line, browser_page: BrowserPage) -> None:
    inspection = line.seed([("short", [100, 100, 140, 130])])
    page = browser_page.page
    page.goto(line.base_url + "/#review")
    page.wait_for_function(f"document.getElementById('review-crop').dataset.drawn === '{inspection['defects'][0]['id']}'")
    page.keyboard.press("c")
    banner = page.wait_for_selector("#error-banner:not([hidden])")
    text = banner.inner_text()
    assert "401" in text and "API key" in text
    screenshot(browser_page, "review-401")
    assert review_of(line.inspection(inspection["id"])["defects"][0]) is None
    # The defect stays in the queue so the operator can retry once the key is pasted.
    assert "defect 1 of 1" in page.inner_text("#review-position")


def test_board_view_draws_one_marker_per_defect_with_tooltip(line: Line, browser_page: BrowserPage) -> None:
    inspection = line.seed([("short", [100, 100, 140, 130]), ("pin-hole", [300, 300, 330, 360])])
    page = browser_page.page
    page.goto(line.base_url + f"/#board/{inspection['id']}")
    page.wait_for_selector('#board-markers[data-count="2"]')
    types = page.eval_on_selector_all("#board-markers .marker", "ms => ms.map(m => m.dataset.type)")
    assert types == ["short", "pin-hole"]
    colors = page.eval_on_selector_all("#board-markers .marker", "ms => ms.map(m => getComputedStyle(m).borderTopColor)")
    assert colors[0] != colors[1]
    # The marker sits on its defect: 100/640 of the displayed image's width from its left edge.
    geometry = page.evaluate(
        "() => { const img = document.getElementById('board-image').getBoundingClientRect();"
        " const m = document.querySelector('#board-markers .marker').getBoundingClientRect();"
        " return [(m.left - img.left) / img.width, (m.top - img.top) / img.height]; }"
    )
    assert geometry == pytest.approx([100 / 640, 100 / 640], abs=0.01)
    page.hover('#board-markers .marker[data-type="pin-hole"]')
    tooltip = page.wait_for_selector("#board-tooltip:not([hidden])").inner_text()
    assert "pin-hole" in tooltip and "mm" in tooltip
    screenshot(browser_page, "board-view")
    assert browser_page.errors == []


def test_board_view_unknown_inspection_shows_the_404(line: Line, browser_page: BrowserPage) -> None:
    line.seed([])
    page = browser_page.page
    page.goto(line.base_url + "/#board/doesnotexist")
    text = page.wait_for_selector("#error-banner:not([hidden])").inner_text()
    assert "404" in text


def test_stats_view_pareto_has_one_bar_per_type_and_a_yield_trend(line: Line, browser_page: BrowserPage) -> None:
    line.seed([("short", [100, 100, 140, 130]), ("short", [200, 100, 240, 130]), ("open", [300, 300, 330, 360])])
    line.seed([("spur", [10, 10, 20, 20])])
    line.seed([])
    page = browser_page.page
    page.goto(line.base_url + "/#stats")
    page.wait_for_selector("#pareto-chart .pareto-bar")
    by_type = line.stats()["defects_by_type"]
    bars = page.eval_on_selector_all("#pareto-chart .pareto-bar", "bs => bs.map(b => [b.dataset.type, Number(b.dataset.count)])")
    assert len(bars) == len(by_type) == 3
    assert dict(bars) == by_type
    assert [n for _, n in bars] == sorted(by_type.values(), reverse=True)
    assert page.locator("#yield-chart .yield-point").count() >= 1
    assert page.inner_text('[data-stat="yield"] .tile-value') == "33.3 %"
    screenshot(browser_page, "stats-view")
    assert browser_page.errors == []
