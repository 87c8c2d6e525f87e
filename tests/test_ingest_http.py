"""`POST /feedback` through the real ASGI app into a real database (design.md §11)."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from cxbot.models import Case, CaseEvent, Customer, Feedback
from cxbot.runtime import Runtime


def item(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "external_id": "r-1",
        "source": "api-test",
        "metric": "nps",
        "score": 9,
        "comment": "Lovely checkout",
        "touchpoint": "checkout",
        "customer": {
            "id": "c-1",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "phone": "+44 20 7946 0000",
        },
        "received_at": "2026-11-01T10:00:00Z",
        "tags": ["web"],
    }
    base.update(overrides)
    return base


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_one_object_is_created_and_stored_with_pii_apart(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/feedback", json=item())
    assert response.status_code == 200
    assert response.json() == {"results": [{"index": 0, "status": "created", "id": 1}]}
    async with runtime.sessions() as session:
        feedback = (await session.execute(select(Feedback))).scalar_one()
        customer = (await session.execute(select(Customer))).scalar_one()
    assert (feedback.metric, feedback.score, feedback.touchpoint_key, feedback.team_key) == (
        "nps",
        9.0,
        "checkout",
        "billing",
    )
    assert feedback.received_at.isoformat() == "2026-11-01T10:00:00+00:00"
    assert feedback.customer_id == customer.id
    assert (customer.external_id, customer.email) == ("c-1", "ada@example.com")
    assert not hasattr(feedback, "email")


async def test_same_item_twice_is_one_feedback_and_an_update_is_applied(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await client.post("/feedback", json=[item(comment=None)])
    again = await client.post("/feedback", json=[item(comment=None)])
    later = await client.post("/feedback", json=[item(comment="Took three tries to pay")])
    assert first.json()["results"][0]["status"] == "created"
    assert again.json()["results"][0]["status"] == "duplicate"
    assert later.json()["results"][0]["status"] == "updated"
    assert await count(runtime, Feedback) == 1
    async with runtime.sessions() as session:
        assert (await session.execute(select(Feedback.comment))).scalar_one() == "Took three tries to pay"


async def test_negative_score_opens_one_case_with_its_routing_reason(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/feedback", json=item(score=3, touchpoint="Refund Related"))
    result = response.json()["results"][0]
    assert result["status"] == "created"
    assert result["case"] == "CX-1"
    # Replaying the same delivery must not open a second case.
    await client.post("/feedback", json=item(score=3, touchpoint="Refund Related"))
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
        events = (await session.execute(select(CaseEvent.kind))).scalars().all()
    assert case.team_key == "billing"
    assert case.touchpoint_key == "refunds"
    assert case.routing_rule == "touchpoint:refunds"
    assert "NPS 3 is at or below 6" in case.routing_reason
    assert case.ack_due_at is not None and case.ack_due_at > case.created_at
    assert events == ["created"]


async def test_touchpoint_threshold_overrides_the_default(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # checkout's NPS threshold is 5, so a 6 there is passive, not negative.
    response = await client.post("/feedback", json=item(score=6, comment=None))
    assert "case" not in response.json()["results"][0]
    assert await count(runtime, Case) == 0


async def test_unknown_touchpoint_goes_to_fallback_and_says_so(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/feedback", json=item(score=2, touchpoint="kiosk", comment="Long queue"))
    result = response.json()["results"][0]
    assert result["warnings"] == [
        "unknown touchpoint 'kiosk'; no rule matched, so the fallback team support owns it"
    ]
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
        feedback = (await session.execute(select(Feedback))).scalar_one()
    assert (case.team_key, case.routing_rule) == ("support", "fallback")
    assert (feedback.touchpoint, feedback.touchpoint_key) == ("kiosk", None)


async def test_keyword_rule_routes_feedback_without_touchpoint(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post(
        "/feedback", json=item(score=1, touchpoint=None, comment="The courier left my parcel in the rain")
    )
    assert response.json()["results"][0]["case"] == "CX-1"
    async with runtime.sessions() as session:
        case = (await session.execute(select(Case))).scalar_one()
    assert (case.team_key, case.routing_rule) == ("logistics", "rule:parcel-words")
    assert "'courier'" in case.routing_reason


async def test_negative_text_adds_a_case_only_for_passive_or_comment_only(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    angry = "Terrible, rude and useless. I am furious and will never buy again."
    response = await client.post(
        "/feedback",
        json=[
            item(external_id="passive", score=7, comment=angry),
            item(external_id="promoter", score=10, comment=angry),
            item(external_id="comment-only", metric="comment", score=None, comment=angry),
            item(external_id="mild", metric="comment", score=None, comment="It was fine."),
        ],
    )
    results = response.json()["results"]
    assert [("case" in r) for r in results] == [True, False, True, False]
    async with runtime.sessions() as session:
        reasons = (await session.execute(select(Case.routing_reason).order_by(Case.id))).scalars().all()
    assert reasons[0].startswith("negative text (sentiment -0.")
    assert "on a passive NPS 7" in reasons[0]
    assert "on a comment" in reasons[1]


async def test_legacy_ces_scale_is_normalised(client: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await client.post(
        "/feedback",
        json=[
            item(metric="ces", score=1, scale="1-5-low-good"),
            item(external_id="r-2", metric="ces", score=5),
        ],
    )
    assert [r["status"] for r in response.json()["results"]] == ["created", "created"]
    async with runtime.sessions() as session:
        rows = (await session.execute(select(Feedback.score, Feedback.raw_score).order_by(Feedback.id))).all()
    assert [tuple(r) for r in rows] == [(7.0, 1.0), (5.0, None)]


async def test_repeated_key_in_one_batch_is_applied_in_order(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post(
        "/feedback", json=[item(comment=None), item(comment="added later"), item(comment="added later")]
    )
    assert [r["status"] for r in response.json()["results"]] == ["created", "updated", "duplicate"]
    assert await count(runtime, Feedback) == 1


async def test_customer_pii_is_refreshed_not_duplicated(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await client.post("/feedback", json=item())
    await client.post(
        "/feedback", json=item(external_id="r-2", customer={"id": "c-1", "email": "ada@new.example"})
    )
    async with runtime.sessions() as session:
        customers = (await session.execute(select(Customer))).scalars().all()
    assert len(customers) == 1
    assert customers[0].email == "ada@new.example"
    assert customers[0].name == "Ada Lovelace"
