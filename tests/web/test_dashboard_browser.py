"""End-to-end tests of the dashboard in headless Chromium against a running server."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # fixtures' types only: under --import-mode=importlib conftest is not importable at run time
    from conftest import BrowserPage, Line, PageFactory, Screenshot

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
    assert page.inner_text('[data-stat="yield"] .tile-value') == "33.3%"
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


# --- Languages: every view in English and in Korean, the switch, and no English left in the Korean page ---

VIEW_TITLES = {
    "live": ("Latest inspections", "최근 검사"),
    "review": ("Review queue", "검토 대기열"),
    "board": ("Board", "보드"),
    "stats": ("Quality", "품질"),
}
LOCALES = {"en": "en-US", "ko": "ko-KR"}
PRODUCT_NAME = "PCB-A1"  # data, not UI: shown as it is in both languages
MODEL_VERSION = "planned-test-inspector"  # conftest.PlannedInspector's (conftest cannot be imported here)


def seed_mixed_line(line: Line) -> dict[str, Any]:
    """A line with something in every view: a 3-defect board (one reviewed), a 1-defect board of a
    product, a passing board. Returns the 3-defect inspection."""
    product = line.create_product(PRODUCT_NAME, px_per_mm=40.0)
    line.seed([("spur", [500, 200, 520, 230])], product=product["id"])
    line.seed([])
    board = line.seed(
        [("short", [100, 100, 140, 130]), ("pin-hole", [300, 300, 330, 360]), ("open", [200, 400, 230, 440])]
    )
    reviewed = line.http.post(
        f"/api/v1/defects/{board['defects'][2]['id']}/review",
        json={"decision": "confirm"},
        headers={"Authorization": f"Bearer {line.api_key}"},
    )
    reviewed.raise_for_status()
    return board


def wait_for_view(page: Any, view: str, board: dict[str, Any]) -> None:
    """Waits until `view` shows the seeded data (not only its fixed text)."""
    if view == "live":
        page.wait_for_function("document.querySelectorAll('.inspection-card').length === 3")
        page.wait_for_function("document.getElementById('live-summary').textContent !== ''")
    elif view == "review":  # the oldest pending defect first: the product board's spur
        page.wait_for_function("Boolean(document.getElementById('review-crop').dataset.drawn)")
    elif view == "board":
        page.wait_for_selector('#board-markers[data-count="3"]')
    else:
        page.wait_for_selector("#pareto-chart .pareto-bar")


def view_url(line: Line, view: str, board: dict[str, Any]) -> str:
    return line.base_url + (f"/#board/{board['id']}" if view == "board" else f"/#{view}")


@pytest.mark.parametrize("view", list(VIEW_TITLES))
@pytest.mark.parametrize("lang", list(LOCALES))
def test_each_view_renders_in_the_browser_language(
    line: Line, open_page: PageFactory, shoot: Screenshot, lang: str, view: str
) -> None:
    """A Korean browser (navigator.languages ko-KR) gets Korean without choosing; any other gets English."""
    board = seed_mixed_line(line)
    browser_page = open_page(LOCALES[lang], timezone_id="Asia/Seoul")
    page = browser_page.page
    page.clock.set_fixed_time("2024-01-02T06:04:05Z")  # 15:04:05 in Seoul: an afternoon hour shows the 24-h clock
    page.goto(view_url(line, view, board))
    wait_for_view(page, view, board)
    assert page.get_attribute("html", "lang") == lang
    assert page.input_value("#lang-select") == lang
    english, korean = VIEW_TITLES[view]
    assert page.inner_text(f"#view-{view} h2").startswith(korean if lang == "ko" else english)
    if view == "live":
        counts = page.eval_on_selector_all(".inspection-card .defect-count", "cs => cs.map(c => c.textContent)")
        assert counts == (
            ["결함 3건", "결함 0건", "결함 1건"] if lang == "ko" else ["3 defects", "0 defects", "1 defect"]
        )
        summary = page.inner_text("#live-summary")
        assert "15:04:05" in summary and not any(m in summary for m in ("PM", "AM", "오후", "오전"))
        times = page.eval_on_selector_all(
            ".inspection-card .card-row.muted span:last-child", "s => s.map(e => e.textContent)"
        )
        assert all(re.fullmatch(r"\d{2}:\d{2}:\d{2}", t) for t in times), times
    if view == "board":
        chips = page.eval_on_selector_all("#board-defects .type-chip", "cs => cs.map(c => c.textContent)")
        assert chips == (["단락", "핀홀", "단선"] if lang == "ko" else ["short", "pin-hole", "open"])
    if view == "stats":
        assert page.inner_text('[data-stat="yield"] .tile-value') == "33.3%"
    shoot(browser_page, f"{view}-{lang}")
    assert browser_page.errors == []


VISIBLE_TEXT_JS = """() => {
  const texts = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (node.textContent.trim() && parent && parent.checkVisibility({ visibilityProperty: true })) {
      texts.push(node.textContent.trim());
    }
  }
  for (const input of document.querySelectorAll("input[placeholder]")) {
    if (input.checkVisibility()) texts.push(input.placeholder);
  }
  return texts.join("\\n");
}"""

# Every English string of the catalogue (plural forms flattened), paired with its Korean text, plus the
# English defect type names: a string the same in both languages (a unit, a command) is not a leak.
CATALOGUE_JS = """async () => {
  const { MESSAGES } = await import("/static/messages.js");
  const { DEFECT_TYPES } = await import("/static/defect_types.js");
  const forms = (entry) => (typeof entry === "object" ? Object.values(entry) : [entry]);
  const pairs = Object.keys(MESSAGES.en).map((key) => [forms(MESSAGES.en[key]), forms(MESSAGES.ko[key] ?? "")]);
  const types = DEFECT_TYPES.map((t) => [[t.labels.en], [t.labels.ko]]);
  return [...pairs, ...types].filter(([en, ko]) => en.join("|") !== ko.join("|")).flatMap(([en]) => en);
}"""

BRANDS_AND_UNITS = {"aoi", "API", "PCB", "ms", "mm", "px"}


def english_fragments(messages: list[str]) -> set[str]:
    """The literal parts of each English message (placeholders cut out), as an operator would read them."""
    fragments = set()
    for message in messages:
        for part in re.split(r"\{\w+\}", message):
            text = part.strip(" .,:;·()→–")
            if len(re.findall(r"[A-Za-z]", text)) >= 2 and text not in BRANDS_AND_UNITS:
                fragments.add(text)
    return fragments


def english_leaks(page: Any, data: list[str]) -> list[str]:
    """Catalogue English found in the page's visible text, once the data shown as it is (ids, names) is cut."""
    text = page.evaluate(VISIBLE_TEXT_JS)
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    fragments = english_fragments(page.evaluate(CATALOGUE_JS))
    return sorted(f for f in fragments if re.search(rf"(?<![A-Za-z]){re.escape(f)}(?![A-Za-z])", text))


def test_korean_pages_show_no_english_ui_string(line: Line, open_page: PageFactory, shoot: Screenshot) -> None:
    board = seed_mixed_line(line)
    browser_page = open_page("ko-KR")
    page = browser_page.page
    data = [PRODUCT_NAME, MODEL_VERSION, *(f"board-{n:03d}" for n in range(1, 4))]
    data += [d["id"] for d in board["defects"]] + [board["id"]]
    for view in VIEW_TITLES:
        page.goto(view_url(line, view, board))
        wait_for_view(page, view, board)
        assert english_leaks(page, data) == [], view
    page.goto(view_url(line, "board", board))  # the tooltip of a marker
    wait_for_view(page, "board", board)
    page.hover('#board-markers .marker[data-type="short"]')
    page.wait_for_selector("#board-tooltip:not([hidden])")
    assert english_leaks(page, data) == []
    page.goto(view_url(line, "review", board))  # a decision refused for want of a key: banner and note
    wait_for_view(page, "review", board)
    page.keyboard.press("c")
    page.wait_for_selector("#error-banner:not([hidden])")
    page.wait_for_function("document.getElementById('review-last').textContent !== ''")
    pending = page.evaluate("document.getElementById('review-panel').dataset.defectId")
    # The API's own words and the request's path are data too: the banner quotes them as they are.
    server_detail = "this request writes data and needs 'Authorization: Bearer <api key>'"
    assert english_leaks(page, [*data, server_detail, f"/api/v1/defects/{pending}/review"]) == []
    assert "API 키" in page.inner_text("#error-banner")
    shoot(browser_page, "review-401-ko")
    assert browser_page.errors == []


def test_the_language_switch_translates_in_place_and_persists_across_reloads(
    line: Line, open_page: PageFactory, shoot: Screenshot
) -> None:
    board = seed_mixed_line(line)
    browser_page = open_page("en-US")
    page = browser_page.page
    page.goto(view_url(line, "board", board))
    wait_for_view(page, "board", board)
    assert page.get_attribute("html", "lang") == "en"
    page.select_option("#lang-select", "ko")
    page.wait_for_selector("html[lang='ko']")
    assert page.inner_text('nav a[data-view="board"]') == "보드"
    assert "판정" in page.inner_text("#board-details")
    assert page.eval_on_selector_all("#board-legend li", "ls => ls.map(l => l.textContent)")[:2] == ["단선", "단락"]
    page.wait_for_selector('#board-markers[data-count="3"]')  # the markers stay on the board
    assert page.evaluate("localStorage.getItem('aoi.lang')") == "ko"

    page.reload()
    wait_for_view(page, "board", board)
    assert page.get_attribute("html", "lang") == "ko"
    assert page.input_value("#lang-select") == "ko"
    assert page.title() == "aoi · 라인 대시보드"
    shoot(browser_page, "language-switch-ko-after-reload")

    korean_browser = open_page("ko-KR").page  # a Korean browser that chose English keeps English
    korean_browser.goto(line.base_url + "/#live")
    korean_browser.wait_for_selector("html[lang='ko']")
    korean_browser.select_option("#lang-select", "en")
    korean_browser.wait_for_selector("html[lang='en']")
    korean_browser.reload()
    korean_browser.wait_for_selector(".inspection-card")
    assert korean_browser.get_attribute("html", "lang") == "en"
    assert korean_browser.inner_text("#view-live h2") == "Latest inspections"
    assert browser_page.errors == []


def test_api_docs_render_with_no_request_leaving_the_host(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    """The factory network has no internet: /docs and /redoc must load everything from the service."""
    page = browser_page.page
    outside: list[str] = []

    def only_this_host(route: Any) -> None:
        if route.request.url.startswith(line.base_url + "/") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_host)
    page.goto(line.base_url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title:has-text('aoi line service')")
    page.wait_for_selector(".swagger-ui button.authorize")  # the bearer scheme is declared
    page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/inspections']")
    shoot(browser_page, "api-docs-swagger")
    page.goto(line.base_url + "/redoc")
    page.wait_for_selector("h1:has-text('aoi line service')")
    shoot(browser_page, "api-docs-redoc")
    assert outside == []
    assert browser_page.errors == []


def test_an_operator_drags_a_box_round_a_missed_defect_and_it_is_stored_confirmed(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    inspection = line.seed([("short", [100, 100, 140, 130])])
    page = browser_page.page
    page.goto(line.base_url + f"/#board/{inspection['id']}")
    page.fill("#api-key", line.api_key)
    page.press("#api-key", "Enter")
    page.wait_for_selector('#board-markers[data-count="1"]')
    page.keyboard.press("a")
    page.wait_for_selector("#board-add-form:not([hidden])")
    # Drag from image pixel (320, 320) to (384, 352): screen points from the displayed image's geometry.
    rect = page.evaluate(
        "() => { const r = document.getElementById('board-image').getBoundingClientRect();"
        " return [r.left, r.top, r.width, r.height]; }"
    )
    left, top, width, height = rect
    page.mouse.move(left + width * 320 / 640, top + height * 320 / 640)
    page.mouse.down()
    page.mouse.move(left + width * 350 / 640, top + height * 340 / 640, steps=4)
    page.mouse.move(left + width * 384 / 640, top + height * 352 / 640, steps=4)
    page.mouse.up()
    page.keyboard.press("6")  # pin-hole
    shoot(browser_page, "board-add-missed")
    page.keyboard.press("Enter")
    page.wait_for_selector('#board-markers[data-count="2"]')
    defects = line.inspection(inspection["id"])["defects"]
    added = [d for d in defects if d.get("origin") == "operator"]
    assert len(added) == 1 and added[0]["type"] == "pin-hole"
    assert added[0]["box_px"] == pytest.approx([320, 320, 384, 352], abs=3)
    assert review_of(added[0]) is not None and review_of(added[0])["status"] == "confirmed"  # type: ignore[index]
    assert browser_page.errors == []
