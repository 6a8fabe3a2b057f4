"""Fixtures for the dashboard's browser tests: a real server on a free port and headless Debian Chromium.

Chromium comes from Debian (`apt-get install -y chromium`), driven by the `playwright` package without
`playwright install` (no downloads). Without /usr/bin/chromium every browser test is skipped, saying why.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import uvicorn

from aoi.api.app import create_app
from aoi.api.settings import ServiceSettings
from aoi.schema import Defect, InspectionResult, Verdict
from aoi.storage import Storage
from aoi.storage.keys import Scope, create_api_key
from aoi.verdict import VerdictRules

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """uvicorn in a background thread, so a test can drive the browser and inspect the API side by side."""

    def __init__(self, app: Any) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="dashboard-test-server", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@dataclass
class BrowserPage:
    """A page plus the JS errors it raised: a dashboard that throws must fail its test, not pass quietly."""

    page: Any
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM_PATH.exists():
        pytest.skip("browser test needs Debian chromium at /usr/bin/chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


PageFactory = Callable[..., BrowserPage]


@pytest.fixture
def open_page(chromium: Any, request: pytest.FixtureRequest) -> Iterator[PageFactory]:
    """Opens pages in fresh browser contexts: `open_page(locale="ko-KR")` is a Korean browser (its
    navigator.languages), with its own localStorage. Each page's last state is kept as a screenshot."""
    opened: list[tuple[Any, BrowserPage]] = []

    def open_one(locale: str = "en-US", **options: Any) -> BrowserPage:
        context = chromium.new_context(viewport={"width": 1400, "height": 1000}, locale=locale, **options)
        page = context.new_page()
        page.set_default_timeout(10_000)
        wrapped = BrowserPage(page)
        page.on("pageerror", lambda exc: wrapped.errors.append(str(exc)))
        opened.append((context, wrapped))
        return wrapped

    yield open_one
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for i, (context, wrapped) in enumerate(opened):
        suffix = f"-{i + 1}" if len(opened) > 1 else ""
        wrapped.page.screenshot(path=str(SCREENSHOT_DIR / f"{request.node.name}-final{suffix}.png"), full_page=True)
        context.close()


@pytest.fixture
def browser_page(open_page: PageFactory) -> BrowserPage:
    """An English (en-US) browser: the language the older tests read the page in."""
    return open_page("en-US")


Screenshot = Callable[[BrowserPage, str], Path]


@pytest.fixture
def shoot() -> Screenshot:
    """Keeps a picture of a test step under test-artifacts/screenshots/ (git-ignored, collected by CI)."""

    def take(browser_page: BrowserPage, name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        browser_page.page.screenshot(path=str(path), full_page=True)
        return path

    return take


BOARD_WH = (640, 640)
PlannedDefects = list[tuple[str, list[float]]]


class PlannedInspector:
    """Stands in for the model: reports the defects planned for each `image_id`, so every test knows
    exactly what the dashboard must show (the model's own accuracy is tested elsewhere)."""

    model_version = "planned-test-inspector"

    def __init__(self) -> None:
        self.planned: dict[str, PlannedDefects] = {}

    def inspect(
        self,
        test: np.ndarray,
        template: np.ndarray,
        *,
        image_id: str,
        px_per_mm: float = 48.0,
        rules: VerdictRules | None = None,
        product: str | None = None,
        origin_px: tuple[float, float] = (0.0, 0.0),
        candidates: object = None,  # a product's capture setup: the planned defects do not depend on it
        registration: object = None,
    ) -> InspectionResult:
        defects = tuple(
            Defect(type=t, confidence=0.9, box_px=tuple(box)).with_mm(px_per_mm, origin_px)  # type: ignore[arg-type]
            for t, box in self.planned.get(image_id, [])
        )
        return InspectionResult(
            image_id=image_id,
            image_size_wh=(test.shape[1], test.shape[0]),
            defects=defects,
            verdict=Verdict.FAIL if defects else Verdict.PASS,
            px_per_mm=px_per_mm,
            model_version=self.model_version,
            timings_ms={"register": 1.25, "candidates": 2.0, "classify": 2.25, "total": 5.5},
            product=product,
        )


def board_png(defects: PlannedDefects) -> bytes:
    """A painted board: a copper area on black, with each planned defect drawn as a bright box."""
    image = np.zeros((BOARD_WH[1], BOARD_WH[0]), np.uint8)
    cv2.rectangle(image, (100, 100), (540, 540), 120, -1)
    for _type, (x1, y1, x2, y2) in defects:
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), 255, 2)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("could not encode the test board")
    return encoded.tobytes()


class Line:
    """The real service under test, seen only through its HTTP API (as the dashboard sees it).
    `api_key` holds every scope; `create_key` makes narrower ones."""

    def __init__(self, server: ThreadedServer, inspector: PlannedInspector, api_key: str, storage: Storage) -> None:
        self.base_url = server.base_url
        self.api_key = api_key
        self._storage = storage
        self._inspector = inspector
        self._template_png = board_png([])
        self.http = httpx.Client(base_url=server.base_url, timeout=10)
        self._count = 0

    def seed(self, defects: PlannedDefects, product: str | None = None) -> dict[str, Any]:
        """Upload one board (through POST /api/v1/inspections, with the key) that has `defects`.

        With `product` the product's template is used, else a template file is uploaded with it."""
        self._count += 1
        image_id = f"board-{self._count:03d}"
        self._inspector.planned[image_id] = defects
        files = {"image": ("test.png", board_png(defects), "image/png")}
        data = {"image_id": image_id}
        if product is None:
            files["template"] = ("t.png", self._template_png, "image/png")
        else:
            data["product"] = product
        response = self.http.post(
            "/api/v1/inspections", headers={"Authorization": f"Bearer {self.api_key}"}, files=files, data=data
        )
        response.raise_for_status()
        return dict(response.json())

    def create_product(self, name: str, px_per_mm: float) -> dict[str, Any]:
        """Register a product (recipe) whose golden template is the defect-free test board."""
        response = self.http.post(
            "/api/v1/products",
            headers={"Authorization": f"Bearer {self.api_key}"},
            files={"template": ("t.png", self._template_png, "image/png")},
            data={"name": name, "px_per_mm": str(px_per_mm)},
        )
        response.raise_for_status()
        return dict(response.json())

    def create_key(self, name: str, *scopes: Scope) -> str:
        """A new API key with only `scopes` (`aoi keys create --scopes ...`)."""
        with self._storage.db.transaction() as session:
            return create_api_key(session, name, scopes)

    def inspection(self, inspection_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/inspections/{inspection_id}", headers=self._auth)
        response.raise_for_status()
        return dict(response.json())

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/api/v1/stats", headers=self._auth)
        response.raise_for_status()
        return dict(response.json())

    @property
    def storage(self) -> Storage:
        """The service's storage, for tests that seed many rows faster than uploads would."""
        return self._storage

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def _serve_line(data_dir: Path, open_reads: bool) -> Iterator[Line]:
    storage = Storage.open(data_dir)
    with storage.db.transaction() as session:
        api_key = create_api_key(session, "test-operator")
    inspector = PlannedInspector()
    settings = ServiceSettings(data_dir=data_dir, open_reads=open_reads)
    app = create_app(settings, inspector=inspector, storage=storage)
    with ThreadedServer(app) as server:
        line = Line(server, inspector, api_key, storage)
        yield line
        line.http.close()
    storage.close()


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    """The service with reads open, as `aoi serve --demo` runs it: the page shows data with no key stored
    (writes, reviews included, still need one)."""
    yield from _serve_line(tmp_path / "data", open_reads=True)


@pytest.fixture
def closed_line(tmp_path: Path) -> Iterator[Line]:
    """The service as `aoi serve` runs it by default: every read of stored data needs a key with `read`."""
    yield from _serve_line(tmp_path / "data", open_reads=False)
