"""End-to-end tests of the dashboard in headless Chromium against a running server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # fixtures' types only: under --import-mode=importlib conftest is not importable at run time
    from conftest import BrowserPage, Line, Screenshot

pytestmark = pytest.mark.browser


def wait_for_crop(page: Any, defect_id: str) -> None:
    """Waits until the review queue has drawn the crop of `defect_id` (the canvas records what it shows)."""
    page.wait_for_function(f"document.getElementById('review-crop').dataset.drawn === '{defect_id}'")


def review_of(defect: dict[str, Any]) -> dict[str, Any] | None:
    return defect.get("review")


def test_live_view_lists_inspections_with_loaded_overlays(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    first = line.seed([("short", [100, 100, 140, 130])])
    second = line.seed([])
    page = browser_page.page
    page.goto(line.base_url + "/")
    page.wait_for_selector(f'.inspection-card[data-id="{second["id"]}"]')
    page.wait_for_function(
        "[...document.querySelectorAll('.inspection-card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    widths = page.eval_on_selector_all(".inspection-card img.overlay", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [640, 640]
    assert page.inner_text(f'.inspection-card[data-id="{first["id"]}"] .badge') == "FAIL"
    assert page.inner_text(f'.inspection-card[data-id="{second["id"]}"] .badge') == "PASS"
    assert "5.5 ms" in page.inner_text(f'.inspection-card[data-id="{first["id"]}"] .timings')

    third = line.seed([("open", [10, 10, 30, 30])])  # arrives while the page is open: polling must show it
    page.wait_for_selector(f'.inspection-card[data-id="{third["id"]}"]', timeout=5000)
    ids = page.eval_on_selector_all(".inspection-card", "cards => cards.map(c => c.dataset.id)")
    assert ids == [third["id"], second["id"], first["id"]]
    shoot(browser_page, "live-view")
    assert browser_page.errors == []


def test_review_queue_keyboard_confirm_reject_reclassify(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    inspection = line.seed(
        [("short", [100, 100, 140, 130]), ("open", [300, 300, 330, 360]), ("spur", [500, 200, 520, 230])]
    )
    page = browser_page.page
    page.goto(line.base_url + "/#review")
    page.fill("#api-key", line.api_key)
    page.press("#api-key", "Enter")
    assert page.inner_text("#key-state") == "key stored"

    defect_ids = [d["id"] for d in inspection["defects"]]
    wait_for_crop(page, defect_ids[0])
    # The crop must show pixels of the board, not an empty canvas.
    lit = page.evaluate(
        "() => { const c = document.getElementById('review-crop');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i+1] + d[i+2] > 150) n++; return n; }"
    )
    assert lit > 1000
    shoot(browser_page, "review-queue")

    page.keyboard.press("c")
    wait_for_crop(page, defect_ids[1])
    page.keyboard.press("x")
    wait_for_crop(page, defect_ids[2])
    page.keyboard.press("3")
    page.wait_for_selector("#review-empty:not([hidden])")

    reviews = [review_of(d) for d in line.inspection(inspection["id"])["defects"]]
    assert [r and r["status"] for r in reviews] == ["confirmed", "false_call", "reclassified"]
    assert reviews[2] and reviews[2]["type"] == "mousebite"
    assert browser_page.errors == []


def test_review_arrow_keys_move_without_deciding(line: Line, browser_page: BrowserPage) -> None:
    inspection = line.seed([("short", [100, 100, 140, 130]), ("open", [300, 300, 330, 360])])
    first, second = (d["id"] for d in inspection["defects"])
    page = browser_page.page
    page.goto(line.base_url + "/#review")
    wait_for_crop(page, first)
    page.keyboard.press("ArrowRight")
    wait_for_crop(page, second)
    assert "defect 2 of 2" in page.inner_text("#review-position")
    page.keyboard.press("ArrowLeft")
    wait_for_crop(page, first)
    assert all(review_of(d) is None for d in line.inspection(inspection["id"])["defects"])


def test_review_without_key_shows_the_401_and_writes_nothing(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    inspection = line.seed([("short", [100, 100, 140, 130])])
    page = browser_page.page
    page.goto(line.base_url + "/#review")
    wait_for_crop(page, inspection["defects"][0]["id"])
    page.keyboard.press("c")
    banner = page.wait_for_selector("#error-banner:not([hidden])")
    text = banner.inner_text()
    assert "401" in text and "API key" in text
    shoot(browser_page, "review-401")
    assert review_of(line.inspection(inspection["id"])["defects"][0]) is None
    # The defect stays in the queue so the operator can retry once the key is pasted.
    assert "defect 1 of 1" in page.inner_text("#review-position")


def test_board_view_draws_one_marker_per_defect_with_tooltip(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    inspection = line.seed([("short", [100, 100, 140, 130]), ("pin-hole", [300, 300, 330, 360])])
    page = browser_page.page
    page.goto(line.base_url + f"/#board/{inspection['id']}")
    page.wait_for_selector('#board-markers[data-count="2"]')
    types = page.eval_on_selector_all("#board-markers .marker", "ms => ms.map(m => m.dataset.type)")
    assert types == ["short", "pin-hole"]
    colors = page.eval_on_selector_all(
        "#board-markers .marker", "ms => ms.map(m => getComputedStyle(m).borderTopColor)"
    )
    assert colors == ["rgb(255, 165, 0)", "rgb(255, 0, 255)"]  # the engine overlay's short / pin-hole colours
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
    shoot(browser_page, "board-view")
    assert browser_page.errors == []


def test_board_view_unknown_inspection_shows_the_404(line: Line, browser_page: BrowserPage) -> None:
    line.seed([])
    page = browser_page.page
    page.goto(line.base_url + "/#board/doesnotexist")
    text = page.wait_for_selector("#error-banner:not([hidden])").inner_text()
    assert "404" in text


def test_stats_view_pareto_has_one_bar_per_type_and_a_yield_trend(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    line.seed([("short", [100, 100, 140, 130]), ("short", [200, 100, 240, 130]), ("open", [300, 300, 330, 360])])
    line.seed([("spur", [10, 10, 20, 20])])
    line.seed([])
    page = browser_page.page
    page.goto(line.base_url + "/#stats")
    page.wait_for_selector("#pareto-chart .pareto-bar")
    by_type = line.stats()["defects_by_type"]
    bars = page.eval_on_selector_all(
        "#pareto-chart .pareto-bar", "bs => bs.map(b => [b.dataset.type, Number(b.dataset.count)])"
    )
    assert len(bars) == len(by_type) == 3
    assert dict(bars) == by_type
    assert [n for _, n in bars] == sorted(by_type.values(), reverse=True)
    assert page.locator("#yield-chart .yield-point").count() >= 1
    assert page.inner_text('[data-stat="yield"] .tile-value') == "33.3 %"
    shoot(browser_page, "stats-view")
    assert browser_page.errors == []


def test_live_view_reports_a_server_error_and_clears_it_when_the_api_recovers(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    line.seed([])
    page = browser_page.page
    failing = {"on": True}

    def answer(route: Any) -> None:
        if failing["on"]:
            route.fulfill(
                status=503,
                content_type="application/json",
                body='{"detail": "the results database is busy", "error": "unavailable"}',
            )
        else:
            route.continue_()

    page.route("**/api/v1/inspections?*", answer)
    page.goto(line.base_url + "/#live")
    text = page.wait_for_selector("#error-banner:not([hidden])").inner_text()
    assert "503" in text and "the results database is busy" in text
    shoot(browser_page, "live-server-error")
    failing["on"] = False
    page.wait_for_selector("#error-banner", state="hidden", timeout=5000)
    page.wait_for_selector(".inspection-card")
    assert browser_page.errors == []


def test_stats_view_filters_by_product(line: Line, browser_page: BrowserPage) -> None:
    product = line.create_product("board-a", px_per_mm=40.0)
    line.seed([("short", [100, 100, 140, 130])], product=product["id"])
    line.seed([("open", [100, 100, 140, 130]), ("spur", [200, 200, 220, 220])])
    page = browser_page.page
    page.goto(line.base_url + "/#stats")
    page.wait_for_function("document.querySelectorAll('#pareto-chart .pareto-bar').length === 3")
    page.select_option("#stats-product", product["id"])
    page.wait_for_function("document.querySelectorAll('#pareto-chart .pareto-bar').length === 1")
    assert page.get_attribute("#pareto-chart .pareto-bar", "data-type") == "short"
    assert page.inner_text('[data-stat="total"] .tile-value') == "1"
