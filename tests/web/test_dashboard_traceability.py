"""The live view's lot / panel search and the lot report it opens, in headless Chromium."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest

if TYPE_CHECKING:  # fixtures' types only: under --import-mode=importlib conftest is not importable at run time
    from conftest import BrowserPage, Line, PageFactory, Screenshot

pytestmark = pytest.mark.browser


def board_png(defects: list[tuple[str, list[float]]]) -> bytes:
    """A 640 px board: copper on black, each planned defect drawn as a bright box (as the other browser tests)."""
    image = np.zeros((640, 640), np.uint8)
    cv2.rectangle(image, (100, 100), (540, 540), 120, -1)
    for _type, (x1, y1, x2, y2) in defects:
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), 255, 2)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def seed_lot(line: Line, lot: str, panel: str, defects: list[tuple[str, list[float]]]) -> dict[str, Any]:
    """One board of `lot` / `panel` (through POST /api/v1/inspections with the form fields)."""
    image_id = f"{lot}-{panel}"
    line._inspector.planned[image_id] = defects
    response = line.http.post(
        "/api/v1/inspections",
        headers={"Authorization": f"Bearer {line.api_key}"},
        files={"image": ("t.png", board_png(defects), "image/png"), "template": ("t.png", board_png([]), "image/png")},
        data={"image_id": image_id, "lot": lot, "panel_id": panel, "line": "SMT-1"},
    )
    response.raise_for_status()
    return dict(response.json())


def card_ids(page: Any) -> list[str]:
    return list(page.eval_on_selector_all(".inspection-card", "cards => cards.map(c => c.dataset.id)"))


def test_lot_search_narrows_the_cards_and_opens_the_printable_report(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    a = seed_lot(line, "L2405", "P0001", [("short", [100, 100, 140, 130]), ("open", [500, 500, 520, 530])])
    b = seed_lot(line, "L2405", "P0002", [])
    other = seed_lot(line, "L2406", "P0001", [("spur", [300, 300, 320, 320])])
    page = browser_page.page
    page.goto(line.base_url + "/")
    page.wait_for_selector(f'.inspection-card[data-id="{other["id"]}"]')
    assert page.is_disabled("#live-report")  # no lot searched yet
    assert "L2405 · P0001" in page.inner_text(f'.inspection-card[data-id="{a["id"]}"] .card-trace')

    page.fill("#live-lot", "L2405")
    page.click("#live-search button[type=submit]")
    page.wait_for_function("document.getElementById('live-list').dataset.lot === 'L2405'")
    page.wait_for_function("document.querySelectorAll('.inspection-card').length === 2")
    assert card_ids(page) == [b["id"], a["id"]]
    assert "L2405" in page.inner_text("#live-summary")
    page.fill("#live-panel", "P0001")
    page.press("#live-panel", "Enter")
    page.wait_for_function("document.querySelectorAll('.inspection-card').length === 1")
    assert card_ids(page) == [a["id"]]
    shoot(browser_page, "live-lot-search")

    with page.context.expect_page() as opened:
        page.click("#live-report")
    report = opened.value
    report.wait_for_selector("h1")
    assert report.inner_text("h1") == "Lot report: L2405"
    assert report.inner_text('.tile[data-key="yield"] .v') == "50.0%"
    assert report.inner_text('.tile[data-key="inspections"] .v') == "2"
    assert report.eval_on_selector_all("table.pareto tbody tr", "rows => rows.map(r => r.dataset.type)") == [
        "open",
        "short",
    ]
    assert report.eval_on_selector_all("svg.heat-map rect[data-count='1']", "cells => cells.length") == 2
    report.set_viewport_size({"width": 1000, "height": 1400})
    report.screenshot(
        path=str(shoot(browser_page, "live-lot-report-opener").with_name("lot-report.png")), full_page=True
    )
    assert browser_page.errors == []


def test_the_search_and_the_report_speak_korean(line: Line, open_page: PageFactory, shoot: Screenshot) -> None:
    seed_lot(line, "L77", "P1", [("short", [100, 100, 140, 130])])
    browser_page = open_page("ko-KR")
    page = browser_page.page
    page.goto(line.base_url + "/")
    page.wait_for_selector(".inspection-card")
    assert page.inner_text("#live-search button[type=submit]") == "검색"
    assert page.inner_text("#live-report") == "로트 보고서"
    assert page.get_attribute("#live-lot", "placeholder") == "예: L2405"
    page.fill("#live-lot", "L77")
    page.click("#live-search button[type=submit]")
    page.wait_for_function("document.getElementById('live-list').dataset.lot === 'L77'")
    with page.context.expect_page() as opened:
        page.click("#live-report")
    report = opened.value
    report.wait_for_selector("h1")
    assert report.inner_text("h1") == "로트 보고서: L77"
    assert "단락" in report.inner_text("table.pareto")
    report.screenshot(
        path=str(shoot(browser_page, "live-lot-search-ko").with_name("lot-report-ko.png")), full_page=True
    )
    assert browser_page.errors == []


def test_an_unknown_lot_report_is_an_error_in_the_banner(line: Line, browser_page: BrowserPage) -> None:
    seed_lot(line, "L1", "P1", [])
    page = browser_page.page
    page.goto(line.base_url + "/")
    page.wait_for_selector(".inspection-card")
    page.fill("#live-lot", "L404")
    page.click("#live-search button[type=submit]")
    page.wait_for_function("document.getElementById('live-list').dataset.lot === 'L404'")
    assert card_ids(page) == []
    page.click("#live-report")
    page.wait_for_selector("#error-banner:not([hidden])")
    assert "no inspection of lot 'L404'" in page.inner_text("#error-text")
    assert len(page.context.pages) == 1  # the window opened for the report was closed again
    assert browser_page.errors == []


def test_the_stats_view_opens_the_report_of_the_shift_running_now(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    seed_lot(line, "L9", "P1", [("short", [100, 100, 140, 130])])
    seed_lot(line, "L9", "P2", [])
    page = browser_page.page
    page.goto(line.base_url + "/#stats")
    page.wait_for_selector('#stats-summary .tile[data-stat="total"]')
    with page.context.expect_page() as opened:
        page.click("#stats-shift-report")
    report = opened.value
    report.wait_for_selector("h1")
    assert report.inner_text("h1").startswith("Shift report")
    assert report.inner_text('.tile[data-key="inspections"] .v') == "2"
    assert report.inner_text('.tile[data-key="yield"] .v') == "50.0%"
    assert browser_page.errors == []
