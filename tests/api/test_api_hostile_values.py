"""Values the API fuzzer (tests/api/api_fuzz.py) aims at, checked one by one on SQLite and PostgreSQL:
integers past the float range in rule and capture JSON, product names that are no safe folder name,
and two requests racing to register one name in two cases."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.support.service import Service, paint_board, png

from aoi.storage.products import ProductRepository


def _post_product(service: Service, name: str, **form: str):
    return service.client.post(
        "/api/v1/products",
        data={"name": name, "px_per_mm": "20", **form},
        files={"template": ("t.png", png(paint_board()), "image/png")},
        headers=service.auth,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rules", {"default": {"min_size_um": 10**400}}),  # float(10**400) raised OverflowError: a 500
        ("rules", {"per_type": {"open": {"min_size_um": -(10**309)}}}),
        ("rules", {"min_confidence": 10**30}),
        ("rules", {"default": {"max_count": 2**63}}),
        ("capture", {"candidates": {"tolerance_px": 10**400}}),  # math.isfinite(10**400) raised too
        ("capture", {"candidates": {"min_area_px": 2**53 + 1}}),
    ],
)
def test_integers_past_the_float_range_are_422_not_500(service: Service, field: str, value: dict) -> None:
    before = service.counts()
    r = _post_product(service, "big", **{field: json.dumps(value)})
    assert r.status_code == 422, r.text
    assert "is out of range; integers here are within +-2^53" in r.json()["detail"], r.json()
    assert service.counts() == before and service.stored_files() == []


def test_integers_within_range_are_still_numbers(service: Service) -> None:
    rules = {"default": {"max_count": 3, "min_size_um": 2**53}, "per_type": {"open": {"max_count": 0}}}
    r = _post_product(service, "ints", rules=json.dumps(rules), capture='{"candidates": {"min_area_px": 12}}')
    assert r.status_code == 201, r.text
    assert r.json()["rules"]["default"] == {"max_count": 3, "min_size_um": float(2**53)}
    assert r.json()["capture"]["candidates"] == {"min_area_px": 12}


def test_product_names_start_with_a_letter_or_a_digit(service: Service) -> None:
    """A leading '-' is read as an option by the tools an operator runs over the hot folder."""
    for name in ("-x", "--rf", "_x", "-", "_"):
        r = _post_product(service, name)
        assert r.status_code == 422, (name, r.text)
        assert "starting with a letter or a digit" in r.json()["detail"], r.json()
    for name in ("x-", "x_", "9-a.b_c"):
        assert _post_product(service, name).status_code == 201, name


def test_a_case_duplicate_that_slips_past_the_check_is_refused_by_the_database(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API looks the name up before it stores; a request that saw no clash (a concurrent one stored it
    meanwhile) must still get a 409 and leave nothing behind, not a second product in another case."""
    first = _post_product(service, "DeepPCB")
    assert first.status_code == 201, first.text
    before, files_before = service.counts(), service.stored_files()
    checked = ProductRepository.name_taken
    calls: list[str] = []

    def misses_once(self: ProductRepository, name: str) -> str | None:
        calls.append(name)
        return None if len(calls) == 1 else checked(self, name)

    monkeypatch.setattr(ProductRepository, "name_taken", misses_once)

    r = _post_product(service, "deeppcb")

    assert r.status_code == 409, r.text
    assert r.json()["detail"] == "a product named 'DeepPCB' already exists (names ignore case)"
    assert service.counts() == before and service.stored_files() == files_before


def test_two_requests_racing_for_one_name_in_two_cases_store_one(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests pass the name check before either stores (a barrier holds them there)."""
    barrier = threading.Barrier(2, timeout=20)
    checked = ProductRepository.name_taken
    calls: list[str] = []

    def name_taken_then_wait(self: ProductRepository, name: str) -> str | None:
        taken = checked(self, name)
        calls.append(name)
        if len(calls) <= 2:  # the two up-front checks; the loser's lookup for its message does not wait
            barrier.wait()
        return taken

    monkeypatch.setattr(ProductRepository, "name_taken", name_taken_then_wait)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda name: _post_product(service, name), ["Board-X", "board-x"]))

    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    winner = next(r.json() for r in answers if r.status_code == 201)
    loser = next(r.json() for r in answers if r.status_code == 409)
    assert loser["detail"] == f"a product named {winner['name']!r} already exists (names ignore case)"
    assert service.counts()["products"] == 1
    assert len(service.stored_files()) == 1  # the loser's template was removed
