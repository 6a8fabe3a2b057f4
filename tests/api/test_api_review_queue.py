"""The review queue over the whole backlog: oldest pending first, filters, walking, leases that keep two
operators off one defect (SQLite and PostgreSQL, concurrently), undo, and the count Stats shares."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from tests.support.service import Service

from aoi.api.services import ProductService
from aoi.schema import Defect, DefectType, InspectionResult, Verdict
from aoi.storage import Storage
from aoi.storage.inspections import InspectionRepository
from aoi.storage.keys import Scope, create_api_key
from aoi.storage.models import DefectRow, InspectionRow, ReviewLeaseRow
from aoi.storage.records import Product, ReviewDecision
from aoi.storage.review_queue import QueueOrder, ReviewFilter, ReviewQueue, count_pending

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SMALL_BOARD = np.zeros((64, 64), np.uint8)


def seed(
    storage: Storage,
    boards: int,
    per_board: int = 1,
    *,
    product: Product | None = None,
    start: datetime = T0,
    image: np.ndarray = SMALL_BOARD,
    types: tuple[DefectType, ...] = (DefectType.SHORT, DefectType.OPEN),
    confidences: tuple[float, ...] = (0.9, 0.6),
) -> list[list[str]]:
    """`boards` inspections stored straight through the recorder, one second apart from `start` (the
    oldest first), each with `per_board` defects; returns their defect ids, board by board."""
    h, w = image.shape
    recorder = storage.recorder
    boards_ids: list[list[str]] = []
    times: dict[str, datetime] = {}
    for i in range(boards):
        defects = tuple(
            Defect(types[k % len(types)], confidences[k % len(confidences)], (2.0 + 6 * k, 2.0, 6.0 + 6 * k, 6.0))
            for k in range(per_board)
        )
        result = InspectionResult(
            image_id=f"b{i:04d}",
            image_size_wh=(w, h),
            defects=defects,
            verdict=Verdict.FAIL if defects else Verdict.PASS,
            px_per_mm=20.0,
            model_version="seeded",
        )
        stored = recorder.record(result, image, product=product)
        times[stored.id] = start + timedelta(seconds=i)
        boards_ids.append([d.id or "" for d in stored.result.defects])
    with storage.db.transaction() as session:
        for inspection_id, moment in times.items():
            session.execute(update(InspectionRow).where(InspectionRow.id == inspection_id).values(created_at=moment))
    return boards_ids


def key_for(service: Service, name: str, *scopes: Scope) -> dict[str, str]:
    with service.storage.db.transaction() as session:
        token = create_api_key(session, name, scopes or (Scope.READ, Scope.REVIEW))
    return {"Authorization": f"Bearer {token}"}


def claim(service: Service, headers: dict[str, str], **params: str) -> dict:
    r = service.client.post("/api/v1/review/next", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def review(service: Service, defect_id: str, headers: dict[str, str], decision: str = "confirm") -> int:
    return service.client.post(
        f"/api/v1/defects/{defect_id}/review", json={"decision": decision}, headers=headers
    ).status_code


def test_next_is_the_oldest_pending_defect_of_the_whole_backlog(service: Service) -> None:
    ids = seed(service.storage, 150, per_board=2)  # 300 pending: far past the dashboard's old 100-board window
    r = service.client.get("/api/v1/review/next")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pending"] == 300 and body["leased"] == 0
    item = body["item"]
    assert item["defect"]["id"] == ids[0][0] and item["position"] == 1 and item["lease"] is None
    assert item["inspection"]["image_id"] == "b0000" and len(item["inspection"]["defects"]) == 2
    assert item["crops"]["test_url"].startswith(f"/api/v1/defects/{ids[0][0]}/crops?side=test")

    newest = service.client.get("/api/v1/review/next", params={"order": "newest"}).json()["item"]
    assert newest["defect"]["id"] == ids[-1][0] and newest["position"] == 1

    for defect_id in ids[0]:  # the oldest board decided: the next board's first defect leads
        assert review(service, defect_id, service.auth) == 200
    body = service.client.get("/api/v1/review/next").json()
    assert body["item"]["defect"]["id"] == ids[1][0] and body["pending"] == 298


def test_walking_after_and_before_wraps_round(service: Service) -> None:
    flat = [d for board in seed(service.storage, 3, per_board=2) for d in board]
    get = service.client.get
    seen = [get("/api/v1/review/next").json()["item"]["defect"]["id"]]
    for _ in range(len(flat)):
        seen.append(get("/api/v1/review/next", params={"after": seen[-1]}).json()["item"]["defect"]["id"])
    assert seen == [*flat, flat[0]]  # the last one's next is the first again
    back = get("/api/v1/review/next", params={"before": flat[0]}).json()["item"]
    assert back["defect"]["id"] == flat[-1] and back["position"] == 6
    assert get("/api/v1/review/next", params={"at": flat[3]}).json()["item"]["defect"]["id"] == flat[3]
    assert review(service, flat[3], service.auth) == 200  # `at` a decided one: the next still pending
    assert get("/api/v1/review/next", params={"at": flat[3]}).json()["item"]["defect"]["id"] == flat[4]
    assert get("/api/v1/review/next", params={"after": flat[2]}).json()["item"]["position"] == 4
    bad = get("/api/v1/review/next", params={"after": "nope"})
    assert bad.status_code == 422 and "defect id" in bad.json()["detail"]
    both = get("/api/v1/review/next", params={"after": flat[0], "before": flat[1]})
    assert both.status_code == 422


def test_filters_narrow_the_queue_and_its_count(service: Service) -> None:
    a = ProductService(service.storage).get(service.add_product("board-a")["id"])
    seed(service.storage, 4, per_board=2, product=a)  # shorts at 0.9, opens at 0.6
    seed(service.storage, 3, per_board=1, start=T0 + timedelta(hours=1), types=(DefectType.SPUR,), confidences=(0.3,))
    get = service.client.get
    cases = [
        ({}, 11),
        ({"product": "board-a"}, 8),
        ({"type": "open"}, 4),
        ({"type": "spur"}, 3),
        ({"min_confidence": "0.5"}, 8),
        ({"max_confidence": "0.6"}, 7),
        ({"min_confidence": "0.5", "max_confidence": "0.7"}, 4),
        ({"product": "board-a", "type": "spur"}, 0),
    ]
    for params, expected in cases:
        body = get("/api/v1/review/next", params=params).json()
        assert body["pending"] == expected, params
        assert get("/api/v1/review/pending", params=params).json() == {"pending": expected, "leased": 0}, params
        if expected:
            defect = body["item"]["defect"]
            assert params.get("type", defect["type"]) == defect["type"]
        else:
            assert body["item"] is None
    for params, words in (
        ({"type": "warp"}, "unknown defect type"),
        ({"min_confidence": "1.5"}, "between 0 and 1"),
        ({"min_confidence": "0.8", "max_confidence": "0.2"}, "must not be above"),
    ):
        r = get("/api/v1/review/next", params=params)
        assert r.status_code == 422 and words in r.json()["detail"], params
    assert get("/api/v1/review/next", params={"product": "nope"}).status_code == 404


def test_stats_and_the_queue_give_the_same_pending_count_past_100_boards(service: Service) -> None:
    ids = seed(service.storage, 130, per_board=2)
    seed(service.storage, 10, per_board=0, start=T0 + timedelta(hours=2))  # passing boards: nothing to review
    for board in ids[:7]:
        assert review(service, board[0], service.auth, "false_call") == 200
    with service.storage.db.session() as session:
        direct = session.scalar(select(func.count(DefectRow.id)).where(DefectRow.review_status.is_(None)))
    stats = service.client.get("/api/v1/stats").json()["reviews"]
    badge = service.client.get("/api/v1/review/pending").json()["pending"]
    queue = service.client.get("/api/v1/review/next").json()["pending"]
    assert stats["pending"] == badge == queue == direct == 253
    assert stats["defects"] - stats["reviewed"] == stats["pending"]


def test_a_claimed_defect_is_not_handed_to_another_operator(service: Service) -> None:
    flat = [d for board in seed(service.storage, 3) for d in board]
    kim, lee = key_for(service, "kim"), key_for(service, "lee")
    first = claim(service, kim)
    assert first["item"]["defect"]["id"] == flat[0]
    lease = first["item"]["lease"]
    assert lease["holder_name"] == "kim"
    left = datetime.fromisoformat(lease["expires_at"]) - datetime.now(UTC)
    assert timedelta(seconds=100) < left <= timedelta(seconds=120)
    assert claim(service, lee)["item"]["defect"]["id"] == flat[1]  # kim's is skipped
    assert service.client.get("/api/v1/review/pending").json() == {"pending": 3, "leased": 2}
    assert service.client.get("/api/v1/review/next").json()["item"]["defect"]["id"] == flat[2]  # a look skips both

    r = service.client.post(f"/api/v1/defects/{flat[0]}/review", json={"decision": "confirm"}, headers=lee)
    assert r.status_code == 409 and r.json()["error"] == "leased" and "'kim'" in r.json()["detail"]
    assert claim(service, kim)["item"]["defect"]["id"] == flat[0]  # claiming again renews kim's own
    assert review(service, flat[0], kim) == 200  # the review releases it
    with service.storage.db.session() as session:
        assert session.get(ReviewLeaseRow, flat[0]) is None
    # kim's next claim moves kim's lease on; lee still holds flat[1]
    assert claim(service, kim)["item"]["defect"]["id"] == flat[2]
    r = service.client.delete("/api/v1/review/lease", headers=kim)
    assert r.status_code == 200 and r.json() == {"released": 1}
    assert claim(service, key_for(service, "park"))["item"]["defect"]["id"] == flat[2]


def test_an_expired_lease_goes_back_to_the_queue(service: Service) -> None:
    flat = [d for board in seed(service.storage, 2) for d in board]
    kim, lee = key_for(service, "kim"), key_for(service, "lee")
    assert claim(service, kim)["item"]["defect"]["id"] == flat[0]
    with service.storage.db.transaction() as session:  # two minutes later
        session.execute(update(ReviewLeaseRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    taken = claim(service, lee)["item"]
    assert taken["defect"]["id"] == flat[0] and taken["lease"]["holder_name"] == "lee"
    r = service.client.post(f"/api/v1/defects/{flat[0]}/review", json={"decision": "confirm"}, headers=kim)
    assert r.status_code == 409  # kim came back too late: lee decides it


def test_claims_need_the_review_scope_and_looks_the_read_scope(service: Service) -> None:
    seed(service.storage, 1)
    reader = key_for(service, "screen", Scope.READ)
    anonymous = TestClient(service.client.app)
    r = anonymous.post("/api/v1/review/next", headers=reader)
    assert r.status_code == 403 and "lacks the 'review' scope" in r.json()["detail"]
    assert anonymous.post("/api/v1/review/next").status_code == 401
    assert anonymous.get("/api/v1/review/next").status_code == 401
    assert anonymous.get("/api/v1/review/next", headers=reader).status_code == 200
    reviewer_only = key_for(service, "station", Scope.REVIEW)
    assert anonymous.post("/api/v1/review/next", headers=reviewer_only).status_code == 200
    assert anonymous.get("/api/v1/review/next", headers=reviewer_only).status_code == 403


def test_undo_puts_the_defect_back_pending_and_leased_to_its_reviewer(service: Service) -> None:
    flat = [d for board in seed(service.storage, 2) for d in board]
    kim, lee = key_for(service, "kim"), key_for(service, "lee")
    claim(service, kim)
    assert review(service, flat[0], kim, "false_call") == 200
    assert service.client.get("/api/v1/review/pending").json()["pending"] == 1

    r = service.client.delete(f"/api/v1/defects/{flat[0]}/review", headers=lee)
    assert r.status_code == 403 and "reviewed by 'kim'" in r.json()["detail"]
    r = service.client.delete(f"/api/v1/defects/{flat[0]}/review", headers=kim)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pending"] == 2 and body["item"]["defect"]["id"] == flat[0]
    assert body["item"]["defect"]["review"] is None and body["item"]["lease"]["holder_name"] == "kim"
    assert claim(service, lee)["item"]["defect"]["id"] == flat[1]  # kim holds the undone one
    r = service.client.delete(f"/api/v1/defects/{flat[0]}/review", headers=kim)
    assert r.status_code == 409 and r.json()["error"] == "not_reviewed"
    assert review(service, flat[0], kim, "confirm") == 200  # decided anew
    admin = key_for(service, "lead", Scope.ADMIN)
    assert service.client.delete(f"/api/v1/defects/{flat[0]}/review", headers=admin).status_code == 200
    assert service.client.delete("/api/v1/defects/nope/review", headers=kim).status_code == 404


def test_concurrent_claims_never_hand_one_defect_to_two_operators(service: Service) -> None:
    """Eight operators claim at the same instant, round after round, on the storage directly."""
    seed(service.storage, 40)
    operators = [f"api-key-op{i}" for i in range(8)]
    barrier = threading.Barrier(len(operators))

    def one_claim(holder: str) -> str | None:
        barrier.wait()
        with service.storage.db.transaction() as session:
            item = ReviewQueue(session).claim(ReviewFilter(), holder, holder, 120.0)
        return item.defect_id if item else None

    with ThreadPoolExecutor(len(operators)) as pool:
        for _ in range(5):
            got = list(pool.map(one_claim, operators))
            assert None not in got and len(set(got)) == len(operators), got
            with service.storage.db.transaction() as session:  # each decides what it holds
                for defect_id in got:
                    row = session.get(DefectRow, defect_id)
                    assert row is not None
                    row.review_status = "confirmed"
                    ReviewQueue(session).settle_for_review(defect_id, None)
    with service.storage.db.session() as session:
        assert count_pending(session) == 0


def test_operators_walk_the_whole_queue_at_once_and_each_defect_is_decided_once(service: Service) -> None:
    ids = seed(service.storage, 30, per_board=2)
    keys = [key_for(service, f"op{i}") for i in range(4)]
    barrier = threading.Barrier(len(keys))

    def walk(headers: dict[str, str]) -> list[str]:
        barrier.wait()
        decided: list[str] = []
        while True:
            r = service.client.post("/api/v1/review/next", headers=headers)
            assert r.status_code == 200, r.text
            item = r.json()["item"]
            if item is None:
                return decided
            r = service.client.post(
                f"/api/v1/defects/{item['defect']['id']}/review", json={"decision": "confirm"}, headers=headers
            )
            assert r.status_code == 200, r.text  # never someone else's lease
            decided.append(item["defect"]["id"])

    with ThreadPoolExecutor(len(keys)) as pool:
        walks = list(pool.map(walk, keys))
    everything = Counter(d for w in walks for d in w)
    assert set(everything) == {d for board in ids for d in board}
    assert max(everything.values()) == 1  # nobody decided a defect twice
    assert all(walks), [len(w) for w in walks]  # the work was shared
    assert service.client.get("/api/v1/stats").json()["reviews"]["pending"] == 0


def test_a_review_recorded_meanwhile_is_not_leased(service: Service) -> None:
    """A claim checks the defect is still pending after writing its lease (a script reviewed it)."""
    flat = [d for board in seed(service.storage, 2) for d in board]
    with service.storage.db.transaction() as session:
        InspectionRepository(session).review_defect(flat[0], ReviewDecision.CONFIRM, "script")
    with service.storage.db.transaction() as session:
        item = ReviewQueue(session).claim(ReviewFilter(), "api-key-x", "x", 60.0, QueueOrder.OLDEST)
    assert item is not None and item.defect_id == flat[1]


@pytest.mark.parametrize("order", ["oldest", "newest"])
def test_the_position_counts_pending_defects_before_it(service: Service, order: str) -> None:
    flat = [d for board in seed(service.storage, 4) for d in board]
    review(service, flat[1], service.auth)
    walk = [service.client.get("/api/v1/review/next", params={"order": order}).json()["item"]]
    for _ in range(2):
        after = walk[-1]["defect"]["id"]
        walk.append(service.client.get("/api/v1/review/next", params={"order": order, "after": after}).json()["item"])
    assert [i["position"] for i in walk] == [1, 2, 3]
    expected = [flat[0], flat[2], flat[3]]
    assert [i["defect"]["id"] for i in walk] == (expected if order == "oldest" else expected[::-1])
