"""The dashboard on a service whose reads need a key (the default of `aoi serve`): the key box, the key
sent on every fetch and image, and what the operator is told when a key is missing, refused or too narrow."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from aoi.storage.keys import Scope

if TYPE_CHECKING:  # fixtures' types only: under --import-mode=importlib conftest is not importable at run time
    from conftest import Line, PageFactory, Screenshot

pytestmark = pytest.mark.browser

ALL_OVERLAYS_LOADED = (
    "(n) => { const imgs = [...document.querySelectorAll('.inspection-card img.overlay')];"
    " return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0); }"
)


def test_a_closed_service_shows_its_inspections_once_a_read_key_is_entered(
    closed_line: Line, open_page: PageFactory, shoot: Screenshot
) -> None:
    failed = closed_line.seed([("short", [100, 100, 140, 130]), ("open", [300, 300, 330, 360])])
    passed = closed_line.seed([])
    browser_page = open_page("en-US")
    page = browser_page.page
    page.goto(closed_line.base_url + "/#live")

    banner = page.wait_for_selector("#error-banner:not([hidden])").inner_text()
    assert "401" in banner and "'read' scope" in banner and "No API key is stored" in banner
    page.wait_for_selector("#key-state[data-state='needed']")
    assert page.inner_text("#key-state") == "a key is needed: paste one with the read scope"
    assert page.locator(".inspection-card").count() == 0
    shoot(browser_page, "closed-reads-no-key")

    page.fill("#api-key", "aoi_not_a_key")  # a wrong key: refused, and the box says so
    page.press("#api-key", "Enter")
    page.wait_for_selector("#key-state[data-state='refused']")
    assert "unknown, revoked or expired" in page.inner_text("#error-banner")

    page.fill("#api-key", closed_line.create_key("wall screen", Scope.READ))
    page.press("#api-key", "Enter")
    page.wait_for_selector(f'.inspection-card[data-id="{passed["id"]}"]')
    page.wait_for_function(ALL_OVERLAYS_LOADED, arg=2)  # the overlays too: fetched with the key
    page.wait_for_selector("#error-banner", state="hidden")
    assert page.inner_text("#key-state") == "key stored"
    assert page.inner_text(f'.inspection-card[data-id="{failed["id"]}"] .badge') == "FAIL"
    shoot(browser_page, "closed-reads-with-key")

    page.goto(closed_line.base_url + f"/#board/{failed['id']}")  # a reload keeps the key (localStorage)
    page.wait_for_selector('#board-markers[data-count="2"]')
    assert page.evaluate("document.getElementById('board-image').naturalWidth") == 640
    page.goto(closed_line.base_url + "/#stats")
    page.wait_for_selector("#pareto-chart .pareto-bar")
    assert page.inner_text('[data-stat="total"] .tile-value') == "2"
    shoot(browser_page, "closed-reads-stats")

    page.goto(closed_line.base_url + "/#review")  # a read-only key shows the queue but cannot decide
    page.wait_for_function("Boolean(document.getElementById('review-crop').dataset.drawn)")
    page.keyboard.press("c")
    banner = page.wait_for_selector("#error-banner:not([hidden])").inner_text()
    assert "403" in banner and "lacks the 'review' scope" in banner
    assert "`aoi keys create --scopes read,review`" in banner  # the dashboard's hint: a key that can do both
    page.wait_for_selector("#key-state[data-state='lacks_scope']")
    shoot(browser_page, "closed-reads-review-403")
    assert all(d.get("review") is None for d in closed_line.inspection(failed["id"])["defects"])
    assert browser_page.errors == []


def test_a_korean_page_without_a_key_asks_for_one_in_korean(
    closed_line: Line, open_page: PageFactory, shoot: Screenshot
) -> None:
    closed_line.seed([])
    browser_page = open_page("ko-KR")
    page = browser_page.page
    page.goto(closed_line.base_url + "/#live")
    banner = page.wait_for_selector("#error-banner:not([hidden])").inner_text()
    assert "401" in banner and "저장된 API 키가 없습니다" in banner
    page.wait_for_selector("#key-state[data-state='needed']")
    assert page.inner_text("#key-state") == "키가 필요합니다: read 권한이 있는 키를 붙여 넣으세요"
    shoot(browser_page, "closed-reads-no-key-ko")
    page.fill("#api-key", closed_line.api_key)
    page.press("#api-key", "Enter")
    page.wait_for_selector(".inspection-card")
    assert page.inner_text("#key-state") == "키 저장됨"
    assert browser_page.errors == []
