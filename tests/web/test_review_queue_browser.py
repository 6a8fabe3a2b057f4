"""The operator's station in headless Chromium: the review queue walks the whole backlog by keyboard (the
badge counting down with Stats' "awaiting review"), two operators never see one defect, and the
verification view (captured | golden | difference, blink, zoom, outline beside the pixels, undo)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
from sqlalchemy import update

from aoi.api.services import ProductService, Upload
from aoi.schema import Defect, DefectType, InspectionResult, Verdict
from aoi.storage.keys import Scope
from aoi.storage.models import DefectRow, InspectionRow

if TYPE_CHECKING:  # fixtures' types only: under --import-mode=importlib conftest is not importable at run time
    from conftest import BrowserPage, Line, PageFactory, Screenshot

pytestmark = pytest.mark.browser

WALK = 300
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
DEFECT_BOX = (300, 300, 316, 312)  # x1, y1, x2, y2 (exclusive) of the painted short
DEFECT_BOX_PX = (300.0, 300.0, 316.0, 312.0)


def _board(defect: bool) -> np.ndarray:
    """Copper traces on black; with `defect`, a short bridging two of them at DEFECT_BOX."""
    board = np.zeros((640, 640), np.uint8)
    for x in range(120, 520, 40):
        board[100:540, x : x + 12] = 200
    if defect:
        x1, y1, x2, y2 = DEFECT_BOX
        board[y1:y2, x1:x2] = 200
    return board


def _png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def seed_backlog(line: Line, count: int, *, with_template: bool = True) -> list[str]:
    """`count` boards with one defect each, stored straight into the service's storage (an upload per
    board would take minutes), one second apart, oldest first; returns the defect ids in that order.
    With `with_template`, the boards belong to a product whose template is the defect-free board."""
    storage = line.storage
    product = None
    if with_template:
        template = Upload(_png(_board(defect=False)), "clean.png")
        product = ProductService(storage).create("walk-board", 40.0, None, template)
    test = _board(defect=True)
    test_png = _png(test)
    types = (DefectType.SHORT, DefectType.SPUR, DefectType.COPPER)
    ids: list[str] = []
    times: dict[str, datetime] = {}
    for i in range(count):
        result = InspectionResult(
            image_id=f"walk-{i:03d}",
            image_size_wh=(640, 640),
            defects=(Defect(types[i % 3], 0.5 + (i % 50) / 100, DEFECT_BOX_PX),),
            verdict=Verdict.FAIL,
            px_per_mm=40.0,
            model_version="seeded",
        )
        stored = storage.recorder.record(result, test, product=product, test_received=test_png, source="hotfolder")
        times[stored.id] = T0 + timedelta(seconds=i)
        ids.append(stored.result.defects[0].id or "")
    with storage.db.transaction() as session:
        for inspection_id, moment in times.items():
            session.execute(update(InspectionRow).where(InspectionRow.id == inspection_id).values(created_at=moment))
    return ids


def review_status(line: Line, defect_id: str) -> str | None:
    with line.storage.db.session() as session:
        row = session.get(DefectRow, defect_id)
        assert row is not None
        return row.review_status


def paste_key(page: Any, key: str) -> None:
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")


def wait_for_lease(page: Any) -> None:
    """Until the shown defect is leased to this page's key (it was looked at before the key was pasted)."""
    page.wait_for_selector('#review-lease[data-state="mine"]')


def wait_for_item(page: Any, defect_id: str) -> None:
    """Until the queue shows `defect_id` with every crop drawn."""
    page.wait_for_function(
        "(id) => { const p = document.getElementById('review-panel');"
        " return !p.hidden && p.dataset.defectId === id && p.dataset.ready === id; }",
        arg=defect_id,
    )


def badge(page: Any) -> str:
    shown = "(() => { const b = document.getElementById('review-count'); return b.hidden ? '' : b.textContent; })()"
    return str(page.evaluate(shown))


SHOWN_JS = """[document.getElementById('review-panel').dataset.defectId,
  document.getElementById('review-count').hidden ? '' : document.getElementById('review-count').textContent,
  document.getElementById('review-position').textContent]"""


def test_the_queue_walks_300_pending_defects_by_keyboard_and_the_badge_counts_down(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    ids = seed_backlog(line, WALK)
    page = browser_page.page
    page.goto(line.base_url + "/#stats")
    page.wait_for_function(f"document.querySelector('[data-stat=\"pending\"] .tile-value')?.textContent === '{WALK}'")
    page.wait_for_function(f"document.getElementById('review-count').textContent === '{WALK}'")
    assert badge(page) == str(WALK) == page.inner_text('[data-stat="pending"] .tile-value')  # the same count

    page.goto(line.base_url + "/#review")
    paste_key(page, line.api_key)
    wait_for_item(page, ids[0])
    wait_for_lease(page)
    shoot(browser_page, "review-walk-start")
    keys = ["c", "x", "2", "c", "r", "4"]  # confirm, false call, reclassify as short / spur by hotkey
    shown: list[str] = []
    started = time.perf_counter()
    for i in range(WALK):
        current, count, where = page.evaluate(SHOWN_JS)  # one round trip: the walk is timed
        shown.append(current)
        assert (count, where) == (str(WALK - i), f"defect 1 of {WALK - i} unreviewed")
        page.keyboard.press(keys[i % len(keys)])
        if i + 1 < WALK:
            wait_for_item(page, ids[i + 1])
    page.wait_for_selector("#review-empty:not([hidden])")
    walked_s = time.perf_counter() - started
    assert shown == ids  # every one, oldest first, none twice
    page.wait_for_function("document.getElementById('review-count').hidden")
    assert page.inner_text("#review-empty") == "Nothing to review: every reported defect has a decision."
    shoot(browser_page, "review-walk-done")
    stats = line.stats()["reviews"]
    assert stats["pending"] == 0 and stats["reviewed"] == WALK
    assert stats["false_calls"] == 100 and stats["reclassified"] == 100 and stats["confirmed"] == 100
    print(f"walked {WALK} defects in {walked_s:.1f} s ({1000 * walked_s / WALK:.0f} ms per decision)")
    assert browser_page.errors == []


CANVAS_PIXELS_JS = """([id, x, y, w, h]) => {
  const c = document.getElementById(id);
  return Array.from(c.getContext('2d').getImageData(x, y, w, h).data);
}"""


def _pixels(page: Any, canvas: str, x: int, y: int, w: int, h: int) -> np.ndarray:
    data = page.evaluate(CANVAS_PIXELS_JS, [canvas, x, y, w, h])
    return np.array(data, np.uint8).reshape(h, w, 4)


def test_the_verification_view_blinks_zooms_outlines_beside_the_pixels_and_undoes(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    ids = seed_backlog(line, 2)
    page = browser_page.page
    page.goto(line.base_url + "/#review")
    paste_key(page, line.api_key)
    wait_for_item(page, ids[0])
    wait_for_lease(page)
    assert page.inner_text("#review-lease").startswith("Held for you until")
    assert page.is_visible("#review-golden") and page.is_visible("#review-diff") and page.is_hidden("#review-note")

    zoom = int(page.get_attribute("#review-crop", "data-zoom") or 0)
    assert zoom == 6 and page.inner_text("#review-zoom") == "zoom 6× (fit)"  # 16 px short: 3 x 16 fits 288 / 6
    left, top, right, bottom = (int(v) for v in (page.get_attribute("#review-crop", "data-outline") or "").split(","))
    for canvas in ("review-crop", "review-golden", "review-diff"):
        pixels = _pixels(page, canvas, 0, 0, 288, 288)
        inside = pixels[top + 1 + 3 : bottom - 3, left + 1 + 3 : right - 3, :3]  # the defect's own pixels
        assert inside.size and (inside.max(axis=2) == inside.min(axis=2)).all(), canvas  # grey: nothing drawn there
        outline = pixels[top, left : right + 1, :3]
        assert (outline.astype(int).max(axis=1) - outline.astype(int).min(axis=1) > 100).all(), canvas  # the colour
    captured = _pixels(page, "review-crop", left + 4, top + 4, right - left - 7, bottom - top - 7)
    assert (captured[..., 0] > 150).all()  # the short's copper, as captured
    assert (_pixels(page, "review-diff", left + 4, top + 4, right - left - 7, bottom - top - 7)[..., 0] > 150).all()
    assert (_pixels(page, "review-golden", left + 4, top + 4, right - left - 7, bottom - top - 7)[..., 0] < 50).all()

    page.keyboard.press("+")
    page.wait_for_selector('#review-crop[data-zoom="8"]')
    assert page.inner_text("#review-zoom") == "zoom 8×"
    page.keyboard.press("-")
    page.keyboard.press("-")
    page.wait_for_selector('#review-crop[data-zoom="4"]')
    page.keyboard.press("0")
    page.wait_for_selector('#review-crop[data-zoom="6"]')

    page.keyboard.press("b")  # blink: the captured panel alternates with the golden one
    page.wait_for_selector('#review-crop[data-showing="template"]')
    assert page.inner_text("#review-crop-caption") == "golden (blinking)"
    shoot(browser_page, "review-verification-blink")
    page.wait_for_selector('#review-crop[data-showing="test"]')
    page.keyboard.press("b")
    page.wait_for_timeout(600)
    assert page.get_attribute("#review-crop", "data-showing") == "test"
    shoot(browser_page, "review-verification")

    page.keyboard.press("x")  # false call, then undo it
    wait_for_item(page, ids[1])
    assert review_status(line, ids[0]) == "false_call"
    page.keyboard.press("u")
    wait_for_item(page, ids[0])
    assert "back in the queue" in page.inner_text("#review-last")
    assert review_status(line, ids[0]) is None
    assert badge(page) == "2"
    page.keyboard.press("Control+z")  # nothing left to undo here
    page.wait_for_function("document.getElementById('review-last').textContent.startsWith('Nothing to undo')")
    page.keyboard.press("c")
    wait_for_item(page, ids[1])
    assert review_status(line, ids[0]) == "confirmed"
    page.keyboard.press("ArrowLeft")  # previous: the queue wraps round to the one pending defect
    wait_for_item(page, ids[1])
    assert browser_page.errors == []


def test_two_operators_are_never_shown_the_same_defect(line: Line, open_page: PageFactory, shoot: Screenshot) -> None:
    ids = seed_backlog(line, 3)
    kim, lee = open_page("en-US"), open_page("ko-KR")
    paged = []
    for browser_page, name in ((kim, "kim"), (lee, "lee")):
        page = browser_page.page
        page.goto(line.base_url + "/#review")
        paste_key(page, line.create_key(name, Scope.READ, Scope.REVIEW))
        paged.append(page)
    shown = []
    for page in paged:
        wait_for_lease(page)
        page.wait_for_function("Boolean(document.getElementById('review-panel').dataset.ready)")
        shown.append(page.evaluate("document.getElementById('review-panel').dataset.defectId"))
    assert len(set(shown)) == 2 and set(shown) <= set(ids)
    paged[0].keyboard.press("c")
    paged[0].wait_for_function(
        "(taken) => { const p = document.getElementById('review-panel'); return p.dataset.ready"
        " && p.dataset.defectId !== taken[0] && p.dataset.defectId !== taken[1]; }",
        arg=shown,
    )  # kim's next skips the one lee holds
    shoot(kim, "review-two-operators-kim")
    shoot(lee, "review-two-operators-lee")
    assert kim.errors == [] and lee.errors == []


def test_a_board_without_a_stored_template_shows_the_captured_pixels_with_a_note(
    line: Line, browser_page: BrowserPage, shoot: Screenshot
) -> None:
    ids = seed_backlog(line, 1, with_template=False)
    page = browser_page.page
    page.goto(line.base_url + "/#review")
    wait_for_item(page, ids[0])
    assert page.is_hidden("#review-golden") and page.is_hidden("#review-diff")
    assert "No golden template is stored with this board" in page.inner_text("#review-note")
    assert page.get_attribute('[data-tool="blink"]', "disabled") is not None
    assert "Look only: no API key is stored" in page.inner_text("#review-lease")
    shoot(browser_page, "review-no-template")
    assert browser_page.errors == []
