"""A product's capture setup (`aoi tolerance --fine-pitch` output): stored, validated, returned, and used
by every inspection of the product: an HTTP upload and a hot-folder file, with the real engine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.support.service import Service, paint_board, png, with_short

from aoi.api import ServiceSettings, create_app
from aoi.detection.candidates import CandidateConfig
from aoi.pipeline.capture import CANDIDATE_SETTINGS, REGISTRATION_SETTINGS, CaptureSettings
from aoi.registration import RegistrationConfig
from aoi.schema import DefectType, SchemaError
from aoi.storage import Storage
from aoi.storage.keys import create_api_key

FINE_PITCH_CAPTURE = {
    "registration": {"subpixel": True},
    "candidates": {
        "tolerance_px": 1.0,
        "tolerance_metric": "euclidean",
        "gross_area_px": 12,
        "topology": True,
        "min_area_px": 1,
        "grey_threshold": 0.2,
        "template_blur_px": 0.5,
    },
}
TOLERANCE_OUTPUT = {**FINE_PITCH_CAPTURE, "good_captures": 3, "edge_pixels": 1200}  # as `aoi tolerance` prints


def _post_product(service: Service, name: str, capture: str | None) -> Any:
    data = {"name": name, "px_per_mm": "100"}
    if capture is not None:
        data["capture"] = capture
    files = {"template": ("t.png", png(paint_board()), "image/png")}
    return service.client.post("/api/v1/products", data=data, files=files, headers=service.auth)


def test_settable_fields_are_engine_config_fields() -> None:
    assert set(CANDIDATE_SETTINGS) <= {f.name for f in fields(CandidateConfig)}
    assert set(REGISTRATION_SETTINGS) <= {f.name for f in fields(RegistrationConfig)}


def test_capture_setup_round_trips_through_the_products_api(service: Service) -> None:
    r = _post_product(service, "substrate-7", json.dumps(TOLERANCE_OUTPUT))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["capture"] == FINE_PITCH_CAPTURE  # the report keys are not kept
    plain = service.add_product("plain")
    assert plain["capture"] is None
    partial = _post_product(service, "partial", '{"candidates": {"tolerance_px": 1, "gross_area_px": 30.0}}')
    assert partial.status_code == 201, partial.text
    assert partial.json()["capture"] == {"registration": {}, "candidates": {"tolerance_px": 1.0, "gross_area_px": 30}}
    empty = _post_product(service, "empty", '{"registration": {}, "candidates": {}}')
    assert empty.status_code == 201 and empty.json()["capture"] is None  # nothing overridden: the bundle's

    listed = {p["name"]: p for p in service.client.get("/api/v1/products").json()["items"]}
    assert listed["substrate-7"] == created and listed["plain"] == plain
    assert service.client.get(f"/api/v1/products/{created['id']}").json() == created
    assert service.client.get("/api/v1/products/substrate-7").json()["capture"] == FINE_PITCH_CAPTURE


def test_invalid_capture_setups_are_422_and_store_nothing(service: Service) -> None:
    before = service.counts()
    files_before = service.stored_files()
    cases = [
        ('{"registration": {"subpixel": true}, "bands": {}}', "'bands'"),
        ('{"candidates": {"tolerance_px": 1, "context_px": 40}}', "'context_px'"),
        ('{"registration": {"max_shift_px": 100}}', "'max_shift_px'"),
        ('{"candidates": {"tolerance_px": 10.5}}', "tolerance_px must be a finite number from 0 to 10"),
        ('{"candidates": {"tolerance_px": -0.1}}', "tolerance_px must be a finite number from 0 to 10"),
        ('{"candidates": {"tolerance_px": 1e999}}', "tolerance_px must be a finite number"),
        ('{"candidates": {"tolerance_px": NaN}}', "not valid json"),
        ('{"candidates": {"tolerance_px": "1.0"}}', "tolerance_px must be a number"),
        ('{"candidates": {"tolerance_px": true}}', "tolerance_px must be a number"),
        ('{"candidates": {"grey_threshold": 1.5}}', "grey_threshold must be a finite number from 0 to 1"),
        ('{"candidates": {"template_blur_px": 6}}', "template_blur_px must be a finite number from 0 to 5"),
        ('{"candidates": {"gross_area_px": 12.5}}', "gross_area_px must be a whole number"),
        ('{"candidates": {"gross_area_px": -1}}', "gross_area_px must be a finite number from 0 to 1000000"),
        ('{"candidates": {"min_area_px": 1000001}}', "min_area_px must be a finite number from 0 to 1000000"),
        ('{"candidates": {"tolerance_metric": "manhattan"}}', "chessboard, euclidean"),
        ('{"candidates": {"topology": 1}}', "topology must be true or false"),
        ('{"registration": {"subpixel": "yes"}}', "subpixel must be true or false"),
        ('{"candidates": [1, 2]}', "capture.candidates must be an object"),
        ("[1]", "must be a json object"),
        ("{not json", "not valid json"),
        ('{"candidates": ' + "[" * 100 + "]" * 100 + "}", "nested 101 levels deep; the limit is 32"),
        ('{"good_captures": "' + "a" * 20_000 + '"}', "the limit is 16384"),
    ]
    for capture, words in cases:
        r = _post_product(service, "bad", capture)
        assert r.status_code == 422, (capture[:60], r.text)
        assert words in r.json()["detail"].lower(), (capture[:60], r.json())
        assert r.json()["error"] in ("invalid_capture", "invalid_request", "malformed_json"), r.json()
    assert service.counts() == before
    assert service.stored_files() == files_before


def test_an_upload_is_inspected_with_its_products_setup_over_the_bundles(service: Service) -> None:
    """Overridden fields replace the inspector's own; the rest keep them; no setup: the inspector's own."""
    fine = _post_product(service, "fine", json.dumps(FINE_PITCH_CAPTURE)).json()
    plain = service.add_product("plain")
    test = with_short(paint_board())
    service.inspect(test, fine["id"])
    candidates, registration = service.inspector.capture_calls[-1]
    assert candidates == CandidateConfig(**FINE_PITCH_CAPTURE["candidates"])  # the fake declares no bundle
    assert registration == RegistrationConfig(subpixel=True)
    service.inspect(test, plain["name"])
    assert service.inspector.capture_calls[-1] == (None, None)
    service.inspect(test, "fine")
    assert service.inspector.capture_calls[-1][0] is candidates  # resolved once per setup


# --- the real engine on a fine-pitch substrate ------------------------------------------------------


@dataclass(frozen=True)
class Substrate:
    template: np.ndarray
    bitten: np.ndarray  # a shifted capture with one mouse bite
    bite_box: tuple[float, float, float, float]
    capture_json: str  # the setup learnt from three good captures, as `aoi tolerance --fine-pitch` prints it


@pytest.fixture(scope="module")
def real_inspector():  # type: ignore[no-untyped-def]
    from aoi.detection.inspector import Inspector

    return Inspector.load()


@pytest.fixture(scope="module")
def substrate() -> Substrate:
    from aoi.data.substrate import capture, generate_design
    from aoi.detection.tolerance import learn_fine_pitch_setup

    rng = np.random.default_rng(4)
    design = generate_design(rng)
    good = [capture(design, rng, None, shifted=True) for _ in range(3)]
    setup = learn_fine_pitch_setup([(g.test, g.template, ()) for g in good], CandidateConfig())
    printed = {
        **setup.settings(),
        "good_captures": setup.tolerance.pairs,
        "edge_pixels": setup.tolerance.edge_pixels,
    }
    bitten = capture(design, rng, DefectType.MOUSEBITE, shifted=True)
    return Substrate(bitten.template, bitten.test, bitten.labels[0].box_px, json.dumps(printed))


@dataclass
class RealLine:
    client: TestClient
    auth: dict[str, str]
    inbox: Path


@pytest.fixture
def real_line(tmp_path: Path, real_inspector) -> Iterator[RealLine]:  # type: ignore[no-untyped-def]
    """The served line with the bundled model: HTTP uploads and the `inbox/` hot folder."""
    from aoi.api.line import LineOptions, build_line

    storage = Storage.open(tmp_path / "data")
    with storage.db.transaction() as session:
        key = create_api_key(session, "capture-setup")
    app = create_app(
        ServiceSettings(data_dir=storage.data_dir, serve_dashboard=False),
        inspector=real_inspector,
        storage=storage,
        line_factory=lambda svc: build_line(svc, LineOptions(inspect_workers=1), real_inspector),
    )
    with TestClient(app) as client:
        yield RealLine(client, {"Authorization": f"Bearer {key}"}, storage.data_dir / "inbox")
    storage.close()


def _add_substrate_products(line: RealLine, substrate: Substrate) -> None:
    for name, capture in (("substrate-fine", substrate.capture_json), ("substrate-plain", None)):
        data = {"name": name, "px_per_mm": "200", **({"capture": capture} if capture else {})}
        files = {"template": ("golden.png", png(substrate.template), "image/png")}
        r = line.client.post("/api/v1/products", data=data, files=files, headers=line.auth)
        assert r.status_code == 201, r.text


def _bite_found(inspection: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    x1, y1, x2, y2 = box
    return any(
        d["box_px"][0] < x2 and x1 < d["box_px"][2] and d["box_px"][1] < y2 and y1 < d["box_px"][3]
        for d in inspection["defects"]
    )


def test_fine_pitch_setup_finds_the_bite_an_upload_of_the_same_product_without_one_misses(
    real_line: RealLine, substrate: Substrate
) -> None:
    _add_substrate_products(real_line, substrate)
    found = {}
    for product in ("substrate-fine", "substrate-plain"):
        r = real_line.client.post(
            "/api/v1/inspections",
            data={"product": product},
            files={"image": ("bitten.png", png(substrate.bitten), "image/png")},
            headers=real_line.auth,
        )
        assert r.status_code == 201, r.text
        found[product] = r.json()
    assert _bite_found(found["substrate-fine"], substrate.bite_box), found["substrate-fine"]["defects"]
    assert found["substrate-fine"]["verdict"] == "fail"
    assert not _bite_found(found["substrate-plain"], substrate.bite_box), found["substrate-plain"]["defects"]
    assert found["substrate-plain"]["verdict"] == "pass"


def test_fine_pitch_setup_finds_the_bite_in_the_hot_folder(real_line: RealLine, substrate: Substrate) -> None:
    _add_substrate_products(real_line, substrate)
    for product in ("substrate-fine", "substrate-plain"):
        folder = real_line.inbox / product
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bitten.png.part").write_bytes(png(substrate.bitten))  # the scanner's temp name, then rename
        (folder / "bitten.png.part").rename(folder / "bitten.png")
    deadline = time.monotonic() + 60
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(found) < 2:
        page = real_line.client.get("/api/v1/inspections", params={"limit": 10}, headers=real_line.auth)
        items = page.json()["items"]
        found = {i["product_name"]: i for i in items}
        reasons = [p.read_text() for p in real_line.inbox.rglob("*.reason.txt")]
        assert not reasons, reasons
        time.sleep(0.2)
    assert set(found) == {"substrate-fine", "substrate-plain"}, found
    assert all(i["source"] == "hotfolder" for i in found.values())
    assert _bite_found(found["substrate-fine"], substrate.bite_box), found["substrate-fine"]["defects"]
    assert found["substrate-fine"]["verdict"] == "fail"
    assert not _bite_found(found["substrate-plain"], substrate.bite_box), found["substrate-plain"]["defects"]
    assert found["substrate-plain"]["verdict"] == "pass"


def test_capture_settings_value_is_checked_when_built() -> None:
    with pytest.raises(SchemaError, match="tolerance_px"):
        CaptureSettings(candidates={"tolerance_px": 11.0})
    settings = CaptureSettings.from_dict(TOLERANCE_OUTPUT)
    assert settings == CaptureSettings.from_dict(FINE_PITCH_CAPTURE) and hash(settings) == hash(
        CaptureSettings.from_dict(FINE_PITCH_CAPTURE)
    )
    assert CaptureSettings.from_dict(settings.to_dict()) == settings
