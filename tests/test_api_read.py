"""`GET /api/scores`, `GET /api/cases`, `/healthz` and `/metrics` through the real ASGI app (design.md §11).

Scores are checked against numbers worked out by hand in the comments, not against cxbot.scores.stats.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from cxbot.models import CASE_STATES, Case
from cxbot.runtime import Runtime
from tests.support.clock import FrozenClock


def stamp(at: datetime) -> str:
    return at.isoformat()


def nps(prefix: str, touchpoint: str, scores: list[int], times: list[datetime]) -> list[dict[str, Any]]:
    assert len(scores) == len(times)
    return [
        {
            "external_id": f"{prefix}-{n}",
            "source": "bi-test",
            "metric": "nps",
            "score": score,
            "touchpoint": touchpoint,
            "received_at": stamp(at),
        }
        for n, (score, at) in enumerate(zip(scores, times, strict=True))
    ]


def hourly(start: datetime, count: int) -> list[datetime]:
    """`count` times an hour apart, going back from `start`."""
    return [start - timedelta(hours=n) for n in range(count)]


async def post(client: httpx.AsyncClient, items: list[dict[str, Any]]) -> None:
    response = await client.post("/feedback", json=items)
    assert response.status_code == 200
    assert {r["status"] for r in response.json()["results"]} == {"created"}


async def seed_scores(client: httpx.AsyncClient, now: datetime) -> None:
    """The data set the score tests compute by hand. `now` is the frozen clock, 2026-11-02 12:00 UTC.

    Billing team, NPS (promoter 9-10, passive 7-8, detractor 0-6):

      when (before now)       touchpoint  promoters  passives  detractors   n
      1 d .. 1 d 9 h          checkout        6          2          2       10
      8 d .. 8 d 9 h          refunds         4          3          3       10
      15 d .. 15 d 18 h, and  refunds        10          5          5       20
        one promoter at exactly 28 d (the window's inclusive start)
      -- current 28 d window: [now - 28 d, now) ---------------------------- 40: 20 P, 10 Pa, 10 D
      28 d + 1 s, 30 d .., and refunds        8         12         20       40
        one passive at exactly 56 d
      -- previous 28 d window: [now - 56 d, now - 28 d) -------------------- 40: 8 P, 12 Pa, 20 D
      60 d                    refunds         0          0          5        5  (in no 28 d window)

    Billing CSAT at payments, 3 d ago: 5,5,5,5,5,4,4,4,3,1 (8 of 10 are 4-5).
    Logistics NPS at delivery, 2 d ago: five 10s.
    """
    day = timedelta(days=1)
    items = nps("checkout", "checkout", [10] * 6 + [8] * 2 + [3] * 2, hourly(now - day, 10))
    items += nps("refunds-8d", "refunds", [9] * 4 + [7] * 3 + [2] * 3, hourly(now - 8 * day, 10))
    items += nps(
        "refunds-15d",
        "Refund Related",
        [9] * 10 + [7] * 5 + [0] * 5,
        [now - 28 * day, *hourly(now - 15 * day, 19)],
    )
    items += nps(
        "refunds-prev",
        "refunds",
        [1] * 20 + [9] * 8 + [8] * 12,
        [now - 28 * day - timedelta(seconds=1), *hourly(now - 30 * day, 38), now - 56 * day],
    )
    items += nps("refunds-60d", "refunds", [0] * 5, [now - 60 * day] * 5)
    items += nps("delivery", "delivery", [10] * 5, hourly(now - 2 * day, 5))
    items += [
        {
            "external_id": f"csat-{n}",
            "source": "bi-test",
            "metric": "csat",
            "score": score,
            "touchpoint": "payments",
            "received_at": stamp(now - 3 * day - timedelta(hours=n)),
        }
        for n, score in enumerate([5, 5, 5, 5, 5, 4, 4, 4, 3, 1])
    ]
    await post(client, items)


EMPTY = {"score": None, "n": 0, "ci_low": None, "ci_high": None, "low_sample": True}
NO_CHANGE_KNOWN = {"delta": None, "verdict": "low sample", "direction": None}


async def test_team_scores_match_the_hand_computation(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    await seed_scores(client, clock())

    response = await client.get("/api/scores", params={"team": "billing"})

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("team", "touchpoint", "window", "from", "to", "min_n")} == {
        "team": "billing",
        "touchpoint": None,
        "window": "28d",
        "from": "2026-10-05T12:00:00+00:00",
        "to": "2026-11-02T12:00:00+00:00",
        "min_n": 30,
    }
    # Current: n = 40, p = 20/40 = 0.5, d = 10/40 = 0.25, NPS = 100 (0.5 - 0.25) = 25.
    #   variance = p + d - (p - d)^2 = 0.75 - 0.0625 = 0.6875
    #   se = 100 sqrt(0.6875 / 40) = 100 sqrt(0.0171875) = 13.1101
    #   CI = 25 -+ 1.96 * 13.1101 = 25 -+ 25.6958 = [-0.70, 50.70]
    # Previous: n = 40, p = 8/40 = 0.2, d = 20/40 = 0.5, NPS = -30.
    #   variance = 0.7 - 0.09 = 0.61; se = 100 sqrt(0.61 / 40) = 12.3491
    #   CI = -30 -+ 24.2043 = [-54.20, -5.80]
    # Change: delta = 55; se = sqrt(13.1101^2 + 12.3491^2) = sqrt(171.875 + 152.5) = 18.0104
    #   CI = 55 -+ 35.3004 = [19.70, 90.30], excludes 0 and both n >= 30: significant, up.
    assert body["scores"]["nps"] == {
        "label": "NPS",
        "score": 25.0,
        "n": 40,
        "ci_low": -0.7,
        "ci_high": 50.7,
        "low_sample": False,
        "previous": {
            "label": "NPS",
            "score": -30.0,
            "n": 40,
            "ci_low": -54.2,
            "ci_high": -5.8,
            "low_sample": False,
        },
        "change": {"delta": 55.0, "verdict": "significant", "direction": "up"},
    }
    # CSAT: 8 of 10 satisfied = 80 %, Wilson interval with z = 1.96 (z^2 = 3.8416):
    #   denominator = 1 + z^2/n = 1.38416
    #   centre = (0.8 + z^2/2n) / 1.38416 = (0.8 + 0.19208) / 1.38416 = 0.716738
    #   half = z sqrt(p(1-p)/n + z^2/4n^2) / 1.38416 = 1.96 sqrt(0.016 + 0.009604) / 1.38416 = 0.226581
    #   CI = [49.02, 94.33]; n = 10 < 30, so low sample, and nothing to compare with.
    assert body["scores"]["csat"] == {
        "label": "CSAT % satisfied (4-5)",
        "score": 80.0,
        "n": 10,
        "ci_low": 49.02,
        "ci_high": 94.33,
        "low_sample": True,
        "previous": {"label": "CSAT % satisfied (4-5)", **EMPTY},
        "change": NO_CHANGE_KNOWN,
    }
    assert body["scores"]["ces"] == {
        "label": "CES mean (1-7, 7 = easiest)",
        **EMPTY,
        "previous": {"label": "CES mean (1-7, 7 = easiest)", **EMPTY},
        "change": NO_CHANGE_KNOWN,
    }


async def test_scores_filtered_by_touchpoint_and_metric(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await seed_scores(client, clock())

    checkout = (await client.get("/api/scores", params={"touchpoint": "checkout", "metric": "nps"})).json()
    refunds = (
        await client.get("/api/scores", params={"touchpoint": "Refund Related", "metric": "nps"})
    ).json()
    csat = (await client.get("/api/scores", params={"team": "billing", "metric": "csat"})).json()

    # checkout: n = 10, p = 0.6, d = 0.2, NPS = 40; variance = 0.8 - 0.16 = 0.64;
    # se = 100 sqrt(0.064) = 25.2982; CI = 40 -+ 49.5845 = [-9.58, 89.58]; n < 30: low sample.
    assert list(checkout["scores"]) == ["nps"]
    assert checkout["touchpoint"] == "checkout"
    assert {k: checkout["scores"]["nps"][k] for k in ("score", "n", "ci_low", "ci_high", "low_sample")} == {
        "score": 40.0,
        "n": 10,
        "ci_low": -9.58,
        "ci_high": 89.58,
        "low_sample": True,
    }
    assert checkout["scores"]["nps"]["previous"]["n"] == 0
    assert checkout["scores"]["nps"]["change"] == NO_CHANGE_KNOWN
    # refunds (named by its alias): n = 30, p = 14/30, d = 8/30, NPS = 20;
    # variance = 22/30 - (6/30)^2 = 0.693333; se = 100 sqrt(0.693333 / 30) = 15.2023;
    # CI = 20 -+ 29.7966 = [-9.80, 49.80]. Previous: all 40 refunds answers, NPS -30 as above.
    assert refunds["touchpoint"] == "refunds"
    refunds_nps = refunds["scores"]["nps"]
    assert (refunds_nps["score"], refunds_nps["n"], refunds_nps["ci_low"], refunds_nps["ci_high"]) == (
        20.0,
        30,
        -9.8,
        49.8,
    )
    assert (refunds_nps["previous"]["score"], refunds_nps["previous"]["n"]) == (-30.0, 40)
    # delta = 50; se = sqrt(15.2023^2 + 12.3491^2) = 19.5860; CI = 50 -+ 38.39 = [11.61, 88.39].
    assert refunds_nps["change"] == {"delta": 50.0, "verdict": "significant", "direction": "up"}
    assert list(csat["scores"]) == ["csat"]
    assert (csat["scores"]["csat"]["score"], csat["scores"]["csat"]["n"]) == (80.0, 10)

    # No team: every team's answers. 40 billing + 5 logistics promoters: 25 P, 10 D of 45 = 33.33.
    everyone = (await client.get("/api/scores", params={"metric": "nps"})).json()
    assert everyone["team"] is None
    assert (everyone["scores"]["nps"]["n"], everyone["scores"]["nps"]["score"]) == (45, 33.33)
    logistics = (await client.get("/api/scores", params={"team": "logistics", "metric": "nps"})).json()
    assert (logistics["scores"]["nps"]["n"], logistics["scores"]["nps"]["score"]) == (5, 100.0)


async def test_window_7d_and_90d_and_moving_the_clock(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    await seed_scores(client, clock())

    week = (
        await client.get("/api/scores", params={"team": "billing", "metric": "nps", "window": "7d"})
    ).json()
    # Current 7 d = checkout only (NPS 40, n 10, CI [-9.58, 89.58] as above).
    # Previous 7 d = [now - 14 d, now - 7 d) = the 8-day-old refunds: n = 10, p = 0.4, d = 0.3, NPS = 10;
    # variance = 0.7 - 0.01 = 0.69; se = 100 sqrt(0.069) = 26.2679; CI = 10 -+ 51.4850 = [-41.48, 61.48].
    # Change: delta 30, but both n < 30, so "low sample" whatever the intervals say.
    assert (week["window"], week["from"]) == ("7d", "2026-10-26T12:00:00+00:00")
    current, previous = week["scores"]["nps"], week["scores"]["nps"]["previous"]
    assert (current["score"], current["n"], current["low_sample"]) == (40.0, 10, True)
    assert (previous["score"], previous["n"], previous["ci_low"], previous["ci_high"]) == (
        10.0,
        10,
        -41.48,
        61.48,
    )
    assert current["change"] == {"delta": 30.0, "verdict": "low sample", "direction": None}

    quarter = (
        await client.get("/api/scores", params={"team": "billing", "metric": "nps", "window": "90d"})
    ).json()
    # All 85 billing NPS answers: 28 P, 22 Pa, 35 D -> 100 (28 - 35) / 85 = -8.24.
    assert (quarter["scores"]["nps"]["n"], quarter["scores"]["nps"]["score"]) == (85, -8.24)

    day = (
        await client.get("/api/scores", params={"team": "billing", "metric": "nps", "window": "1d"})
    ).json()
    # [now - 1 d, now) holds only the newest checkout answer, received exactly 1 day ago (the
    # inclusive start); the other nine, 1 d 1 h .. 1 d 9 h old, are the day before.
    assert day["scores"]["nps"]["n"] == 1
    assert day["scores"]["nps"]["previous"]["n"] == 9

    # One second later the promoter at exactly now - 28 d leaves the current window for the previous
    # one, and the passive at exactly now - 56 d leaves the previous window.
    clock.advance(seconds=1)
    later = (await client.get("/api/scores", params={"team": "billing", "metric": "nps"})).json()["scores"][
        "nps"
    ]
    # Current: 19 P, 10 Pa, 10 D of 39 -> 100 * 9 / 39 = 23.08. Previous: 9 P, 11 Pa, 20 D of 40 -> -27.5.
    assert (later["n"], later["score"]) == (39, 23.08)
    assert (later["previous"]["n"], later["previous"]["score"]) == (40, -27.5)


async def test_low_sample_follows_the_teams_floor(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    # Product's min_n is 20 in cxbot.example.yaml; everyone else's is the default 30.
    now = clock()
    await post(client, nps("web-recent", "website", [10] * 19, hourly(now - timedelta(days=1), 19)))
    await post(client, nps("web-older", "website", [9] * 6, hourly(now - timedelta(days=10), 6)))

    team_28d = (await client.get("/api/scores", params={"team": "product", "metric": "nps"})).json()
    team_7d = (
        await client.get("/api/scores", params={"team": "product", "metric": "nps", "window": "7d"})
    ).json()
    by_touchpoint = (
        await client.get("/api/scores", params={"touchpoint": "website", "metric": "nps"})
    ).json()

    assert (team_28d["min_n"], team_28d["scores"]["nps"]["n"], team_28d["scores"]["nps"]["low_sample"]) == (
        20,
        25,
        False,
    )
    assert (team_7d["scores"]["nps"]["n"], team_7d["scores"]["nps"]["low_sample"]) == (19, True)
    # A touchpoint belongs to one team, so its floor is that team's.
    assert by_touchpoint["min_n"] == 20
    assert (by_touchpoint["scores"]["nps"]["n"], by_touchpoint["scores"]["nps"]["low_sample"]) == (25, False)
    # The same 25 answers under the default floor of 30 would be a low sample.
    everyone = (await client.get("/api/scores", params={"metric": "nps"})).json()
    assert (everyone["min_n"], everyone["scores"]["nps"]["n"], everyone["scores"]["nps"]["low_sample"]) == (
        30,
        25,
        True,
    )


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (
            {"team": "finance"},
            "team: 'finance' is not a team (teams are: support, logistics, billing, product, travel)",
        ),
        ({"touchpoint": "kiosk"}, "touchpoint: 'kiosk' is not a configured touchpoint"),
        ({"metric": "comment"}, "metric: 'comment' is not one of nps, csat, ces"),
        ({"metric": "NPS"}, "metric: 'NPS' is not one of nps, csat, ces"),
        ({"window": "30d"}, "window: '30d' is not one of 1d, 7d, 28d, 90d"),
        ({"window": "7"}, "window: '7' is not one of 1d, 7d, 28d, 90d"),
    ],
)
async def test_invalid_score_parameters_are_400_with_the_reason(
    client: httpx.AsyncClient, params: dict[str, str], reason: str
) -> None:
    response = await client.get("/api/scores", params=params)
    assert response.status_code == 400
    assert response.json() == {"error": reason}


# --- cases ----------------------------------------------------------------------------------------

PEOPLE = [
    ("Grace Hopper", "grace.hopper@example.com", "+1 202 555 0101"),
    ("Alan Turing", "alan.turing@example.org", "+44 161 496 0102"),
    ("Katherine Johnson", "kjohnson@example.net", "+1 757 555 0103"),
]

#: (touchpoint, state it is moved to) for cases CX-1 .. CX-8, in creation order.
CASES = [
    ("refunds", "new"),
    ("refunds", "acknowledged"),
    ("delivery", "in_progress"),
    ("payments", "contacted"),
    ("delivery", "resolved"),
    ("support-phone", "closed"),
    ("checkout", "new"),
    ("returns", "new"),
]
TEAM_OF = {
    "refunds": "billing",
    "payments": "billing",
    "checkout": "billing",
    "delivery": "logistics",
    "returns": "logistics",
    "support-phone": "support",
}


async def seed_cases(client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock) -> None:
    """Eight negative answers, one request each (so CX-n is the n-th), then moved to their states."""
    for n, (touchpoint, _) in enumerate(CASES, start=1):
        name, email, phone = PEOPLE[n % len(PEOPLE)]
        response = await client.post(
            "/feedback",
            json={
                "external_id": f"neg-{n}",
                "source": "bi-test",
                "metric": "nps",
                "score": 1,
                # The customer's name in the comment too: comments never appear in /api/cases.
                "comment": f"{name} here, still waiting",
                "touchpoint": touchpoint,
                "customer": {"id": f"cust-{n}", "name": name, "email": email, "phone": phone},
            },
        )
        assert response.json()["results"][0]["case"] == f"CX-{n}"
        clock.advance(minutes=1)
    # The state machine is exercised elsewhere; here the cases are simply put in each state.
    stamps = {
        "acknowledged": "acknowledged_at",
        "contacted": "contacted_at",
        "resolved": "resolved_at",
        "closed": "closed_at",
    }
    async with runtime.sessions() as session, session.begin():
        for n, (_, state) in enumerate(CASES, start=1):
            values: dict[str, Any] = {"state": state}
            if state in stamps:
                values[stamps[state]] = clock()
            await session.execute(update(Case).where(Case.id == n).values(**values))


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [case["id"] for case in response.json()["cases"]]


async def test_cases_newest_first_with_their_fields(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    start = clock()
    await seed_cases(client, runtime, clock)

    response = await client.get("/api/cases")

    assert ids(response) == [f"CX-{n}" for n in range(8, 0, -1)]
    assert "next_before" not in response.json()
    by_id = {case["id"]: case for case in response.json()["cases"]}
    phone_case = by_id["CX-6"]  # support: the "urgent" policy, 30 min to acknowledge, 1 day to resolve
    created = start + timedelta(minutes=5)
    assert phone_case == {
        "id": "CX-6",
        "state": "closed",
        "team": "support",
        "touchpoint": "support-phone",
        "title": "NPS 1 at support-phone",
        "priority": "normal",
        "assignee": None,
        "escalation_level": 0,
        "routing_rule": "touchpoint:support-phone",
        "routing_reason": "NPS 1 is at or below 6; touchpoint 'support-phone' is owned by support",
        "feedback_id": 6,
        "created_at": stamp(created),
        "acknowledged_at": None,
        "contacted_at": None,
        "resolved_at": None,
        "closed_at": stamp(start + timedelta(minutes=8)),
        "ack_due_at": stamp(created + timedelta(minutes=30)),
        "resolve_due_at": stamp(created + timedelta(days=1)),
        "snoozed_until": None,
    }
    assert all(by_id[f"CX-{n}"]["team"] == TEAM_OF[tp] for n, (tp, _) in enumerate(CASES, start=1))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"team": "billing"}, [7, 4, 2, 1]),
        ({"team": "logistics"}, [8, 5, 3]),
        ({"team": "travel"}, []),
        ({"state": "open"}, [8, 7, 4, 3, 2, 1]),
        ({"state": "new"}, [8, 7, 1]),
        ({"state": "acknowledged"}, [2]),
        ({"state": "in_progress"}, [3]),
        ({"state": "contacted"}, [4]),
        ({"state": "resolved"}, [5]),
        ({"state": "closed"}, [6]),
        ({"team": "billing", "state": "open"}, [7, 4, 2, 1]),
        ({"team": "logistics", "state": "open"}, [8, 3]),
        ({"team": "logistics", "state": "new"}, [8]),
        ({"team": "support", "state": "open"}, []),
    ],
    ids=lambda value: "&".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else None,
)
async def test_cases_filtered_by_team_and_state(
    client: httpx.AsyncClient,
    runtime: Runtime,
    clock: FrozenClock,
    params: dict[str, str],
    expected: list[int],
) -> None:
    await seed_cases(client, runtime, clock)
    response = await client.get("/api/cases", params=params)
    assert ids(response) == [f"CX-{n}" for n in expected]
    for case in response.json()["cases"]:
        if "state" in params and params["state"] != "open":
            assert case["state"] == params["state"]
        if "team" in params:
            assert case["team"] == params["team"]


def test_every_real_state_is_covered_by_the_filter_cases() -> None:
    assert {state for _, state in CASES} == set(CASE_STATES)


async def test_cases_paginate_with_limit_and_before(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await seed_cases(client, runtime, clock)

    first = await client.get("/api/cases", params={"limit": 3})
    assert ids(first) == ["CX-8", "CX-7", "CX-6"]
    assert first.json()["next_before"] == "CX-6"
    second = await client.get("/api/cases", params={"limit": 3, "before": first.json()["next_before"]})
    assert ids(second) == ["CX-5", "CX-4", "CX-3"]
    assert second.json()["next_before"] == "CX-3"
    third = await client.get("/api/cases", params={"limit": 3, "before": second.json()["next_before"]})
    assert ids(third) == ["CX-2", "CX-1"]
    assert "next_before" not in third.json()  # a short page is the last one

    # `before` takes the bare number too, and pages combine with filters.
    assert ids(await client.get("/api/cases", params={"before": "3"})) == ["CX-2", "CX-1"]
    billing = await client.get("/api/cases", params={"team": "billing", "limit": 2})
    assert (ids(billing), billing.json()["next_before"]) == (["CX-7", "CX-4"], "CX-4")
    rest = await client.get("/api/cases", params={"team": "billing", "limit": 2, "before": "CX-4"})
    assert ids(rest) == ["CX-2", "CX-1"]
    assert ids(await client.get("/api/cases", params={"team": "billing", "limit": 2, "before": "CX-1"})) == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (
            {"team": "finance"},
            "team: 'finance' is not a team (teams are: support, logistics, billing, product, travel)",
        ),
        (
            {"state": "pending"},
            "state: 'pending' is not one of open, new, acknowledged, in_progress, contacted, "
            "resolved, closed",
        ),
        ({"limit": "0"}, "limit: must be between 1 and 1000"),
        ({"limit": "1001"}, "limit: must be between 1 and 1000"),
        ({"limit": "ten"}, "limit and before must be whole numbers (before may be a case id like CX-42)"),
        (
            {"before": "CX-four"},
            "limit and before must be whole numbers (before may be a case id like CX-42)",
        ),
    ],
)
async def test_invalid_case_parameters_are_400_with_the_reason(
    client: httpx.AsyncClient, params: dict[str, str], reason: str
) -> None:
    response = await client.get("/api/cases", params=params)
    assert response.status_code == 400
    assert response.json() == {"error": reason}


async def test_no_customer_pii_in_any_api_answer(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await seed_cases(client, runtime, clock)
    answers = [
        await client.get("/api/cases"),
        await client.get("/api/cases", params={"limit": 1}),
        *[await client.get("/api/cases", params={"state": state}) for state in (*CASE_STATES, "open")],
        *[
            await client.get("/api/cases", params={"team": team})
            for team in ("billing", "logistics", "support")
        ],
        await client.get("/api/scores"),
        await client.get("/api/scores", params={"team": "billing", "window": "90d"}),
    ]
    assert all(answer.status_code == 200 for answer in answers)
    text = "\n".join(answer.text for answer in answers)
    assert "CX-8" in text
    for name, email, phone in PEOPLE:
        for secret in (name, *name.split(), email, email.split("@")[0], phone, phone.replace(" ", "")):
            assert secret not in text, secret
    for n in range(1, len(CASES) + 1):
        assert f"cust-{n}" not in text  # not even the customer's id in the source system


# --- operators ------------------------------------------------------------------------------------


async def test_healthz_is_ok_without_a_key(runtime: Runtime) -> None:
    from cxbot.web import create_app

    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://cxbot.test") as anonymous:
        response = await anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_metrics_count_items_by_outcome_and_open_cases_by_team(
    client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock
) -> None:
    await seed_cases(client, runtime, clock)  # 8 created
    again = await client.post(
        "/feedback",
        json=[
            {
                "external_id": "neg-1",
                "source": "bi-test",
                "metric": "nps",
                "score": 1,
                "touchpoint": "refunds",
            },
            {
                "external_id": "pos-1",
                "source": "bi-test",
                "metric": "nps",
                "score": 10,
                "touchpoint": "lounge",
            },
            {"external_id": "bad-1", "source": "bi-test", "metric": "nps", "score": 11},
        ],
    )
    assert [r["status"] for r in again.json()["results"]] == ["duplicate", "created", "error"]

    response = await client.get("/metrics", headers={"Authorization": ""})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    assert "# TYPE cxbot_feedback_items_total counter" in lines
    assert 'cxbot_feedback_items_total{status="created"} 9' in lines
    assert 'cxbot_feedback_items_total{status="duplicate"} 1' in lines
    assert 'cxbot_feedback_items_total{status="error"} 1' in lines
    assert "# TYPE cxbot_open_cases gauge" in lines
    # Open = new, acknowledged, in_progress, contacted: billing CX-1, 2, 4, 7; logistics CX-3, 8;
    # support's only case (CX-6) is closed, so support has no sample at all.
    open_cases = sorted(line for line in lines if line.startswith("cxbot_open_cases{"))
    assert open_cases == ['cxbot_open_cases{team="billing"} 4', 'cxbot_open_cases{team="logistics"} 2']
