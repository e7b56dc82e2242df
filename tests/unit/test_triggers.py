"""kernel_runtime.triggers (rules, lineage, engine): trigger checks, cron due times (DST), catch-up, loops, lineage, $event mapping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kernel_runtime.errors import InvalidParameters
from kernel_runtime.model.parameters import Parameter
from kernel_runtime.store import LocalStore
from kernel_runtime.store.repository import Repository
from kernel_runtime.triggers.engine import Triggers
from kernel_runtime.triggers.lineage import downstream_of, lineage_graph, upstream_of
from kernel_runtime.triggers.rules import check_triggers, latest_due, loop_problems, map_parameters, schedule_id

UTC = timezone.utc
PARAMS = {
    "region": Parameter("region", "str", "EU"),
    "limit": Parameter("limit", "int", 10),
    "ratio": Parameter("ratio", "float", 1.0),
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def messages(problems: list[dict[str, Any]]) -> list[str]:
    assert all(p["cell"] is None for p in problems)
    return [p["message"] for p in problems]


# check_triggers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "trig",
    [
        {"schedule": "*/15 * * * *"},
        {"schedule": "30 2 * * *", "timezone": "Europe/Berlin", "parameters": {"region": "US"}},
        {"schedule": "0 9 * * mon-fri", "timezone": "America/New_York"},
        {"event": "orders.updated", "parameters": {"region": "$event.region", "limit": 5}},
        {"event": "product.sales-raw.succeeded", "parameters": {"limit": "$event.result.rows"}},
        {"event": "a", "parameters": {"ratio": 3}},  # an int is a float
    ],
)
def test_valid_triggers_have_no_problems(trig):
    assert check_triggers([trig], "me", PARAMS) == []


@pytest.mark.parametrize(
    "trig, fragment",
    [
        ({"schedule": "61 * * * *"}, "is not a five-field cron expression"),
        ({"schedule": "* * * *"}, "is not a five-field cron expression"),
        ({"schedule": "* * * * * *"}, "is not a five-field cron expression"),
        ({"schedule": "every day"}, "is not a five-field cron expression"),
        ({"schedule": 15}, "is not a five-field cron expression"),
        ({"schedule": "* * * * *", "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"schedule": "* * * * *", "timezone": 3}, "unknown timezone 3"),
        ({"schedule": "* * * * *", "timezone": "../etc/passwd"}, "unknown timezone"),
        ({"schedule": "* * * * *", "parameters": {"nope": 1}}, "unknown parameter 'nope'"),
        ({"schedule": "* * * * *", "parameters": {"limit": "3"}}, "parameter 'limit' must be int"),
        ({"schedule": "* * * * *", "parameters": {"limit": True}}, "parameter 'limit' must be int"),
        ({"schedule": "* * * * *", "parameters": {"ratio": float("nan")}}, "parameter 'ratio' must be float"),
        ({"schedule": "* * * * *", "parameters": ["region"]}, "parameters must be an object"),
        ({"schedule": "* * * * *", "parameters": {"region": "$event.x"}}, "refers to an event, but this is a schedule"),
        ({"event": "Orders"}, "topic 'Orders' must match"),
        ({"event": "-orders"}, "topic '-orders' must match"),
        ({"event": "a b"}, "topic 'a b' must match"),
        ({"event": "x" * 129}, "must match"),
        ({"event": 7}, "topic 7 must match"),
        ({"event": "product.me.succeeded"}, "cannot trigger on its own runs"),
        ({"event": "product.me.failed"}, "cannot trigger on its own runs"),
        ({"event": "orders", "parameters": {"nope": "$event.x"}}, "unknown parameter 'nope'"),
        ({"schedule": "* * * * *", "event": "orders"}, "needs exactly one of 'schedule' or 'event'"),
        ({"parameters": {}}, "needs exactly one of 'schedule' or 'event'"),
        ({}, "needs exactly one of 'schedule' or 'event'"),
        ("* * * * *", "must be an object"),
    ],
)
def test_each_bad_trigger_is_one_problem_naming_it(trig, fragment):
    found = messages(check_triggers([{"event": "fine"}, trig], "me", PARAMS))
    assert len(found) == 1, found
    assert found[0].startswith("Trigger 1")
    assert fragment in found[0]


def test_a_topic_with_a_trailing_newline_is_a_problem():
    assert len(check_triggers([{"event": "orders\n"}], "me", PARAMS)) == 1


def test_a_topic_of_128_characters_is_the_longest_allowed():
    assert check_triggers([{"event": "x" * 128}], "me", PARAMS) == []


def test_another_products_topic_is_not_its_own():
    assert check_triggers([{"event": "product.me2.succeeded"}], "me", PARAMS) == []


@pytest.mark.parametrize("raw", [{"schedule": "* * * * *"}, "x", None, 3])
def test_triggers_must_be_a_list(raw):
    assert messages(check_triggers(raw, "me", PARAMS)) == ["metadata.nbmesh.triggers must be a list."]


def test_every_problem_is_reported_not_only_the_first():
    found = messages(
        check_triggers(
            [{"schedule": "bad", "timezone": "Nowhere/Never", "parameters": {"x": 1}}, {"event": "BAD"}], "me", PARAMS
        )
    )
    assert len(found) == 4
    assert [m.split(":")[0] for m in found] == ["Trigger 0", "Trigger 0", "Trigger 0", "Trigger 1"]


def test_schedule_id_is_stable_and_depends_on_what_runs():
    base = {"schedule": "0 * * * *", "parameters": {"a": 1, "b": 2}}
    same = {"parameters": {"b": 2, "a": 1}, "schedule": "0 * * * *", "timezone": "UTC"}
    assert schedule_id(base) == schedule_id(same)
    assert len(schedule_id(base)) == 16
    assert schedule_id(base) != schedule_id({**base, "timezone": "Europe/Berlin"})
    assert schedule_id(base) != schedule_id({**base, "schedule": "5 * * * *"})
    assert schedule_id(base) != schedule_id({**base, "parameters": {"a": 1, "b": 3}})


# cron due times ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expr, tz, now, due",
    [
        ("*/15 * * * *", "UTC", "2024-05-01T10:14:59", "2024-05-01T10:00:00"),
        ("*/15 * * * *", "UTC", "2024-05-01T10:15:00", "2024-05-01T10:15:00"),  # "at or before now"
        ("*/15 * * * *", "UTC", "2024-05-01T10:15:01", "2024-05-01T10:15:00"),
        ("0 0 * * *", "UTC", "2024-01-01T00:00:00", "2024-01-01T00:00:00"),
        ("0 0 * * *", "UTC", "2023-12-31T23:59:59", "2023-12-31T00:00:00"),
        ("0 9 * * mon", "UTC", "2024-05-05T12:00:00", "2024-04-29T09:00:00"),  # a Sunday: last Monday
        # Berlin in summer is UTC+2, in winter UTC+1.
        ("30 2 * * *", "Europe/Berlin", "2024-06-15T00:30:00", "2024-06-15T00:30:00"),
        ("30 2 * * *", "Europe/Berlin", "2024-06-15T00:29:59", "2024-06-14T00:30:00"),
        ("30 2 * * *", "Europe/Berlin", "2024-01-15T01:30:00", "2024-01-15T01:30:00"),
        ("0 9 * * *", "America/New_York", "2024-07-04T13:00:00", "2024-07-04T13:00:00"),
        ("0 9 * * *", "Asia/Kolkata", "2024-07-04T03:30:00", "2024-07-04T03:30:00"),  # UTC+5:30
    ],
)
def test_latest_due_is_the_newest_due_time_at_or_before_now_in_utc(expr, tz, now, due):
    got = latest_due(expr, tz, utc(now))
    assert got == utc(due)
    assert got.utcoffset() == timedelta(0)


# 2024-03-31 in Berlin: 02:00 CET jumps to 03:00 CEST (at 01:00 UTC), so 02:30 does not exist that day;
# the schedule runs once, at the first instant after the gap (03:00 CEST = 01:00 UTC).
@pytest.mark.parametrize(
    "now, due",
    [
        ("2024-03-31T00:59:59", "2024-03-30T01:30:00"),  # 01:59:59 CET: yesterday's 02:30 CET
        ("2024-03-31T01:00:00", "2024-03-31T01:00:00"),  # 03:00 CEST
        ("2024-03-31T01:30:00", "2024-03-31T01:00:00"),
        ("2024-03-31T22:00:00", "2024-03-31T01:00:00"),
        ("2024-04-01T00:29:59", "2024-03-31T01:00:00"),
        ("2024-04-01T00:30:00", "2024-04-01T00:30:00"),  # 02:30 CEST
    ],
)
def test_latest_due_on_the_spring_forward_day(now, due):
    assert latest_due("30 2 * * *", "Europe/Berlin", utc(now)) == utc(due)


# 2024-10-27 in Berlin: 03:00 CEST falls back to 02:00 CET (at 01:00 UTC), so 02:30 happens twice:
# at 00:30 UTC (CEST) and at 01:30 UTC (CET).
@pytest.mark.parametrize(
    "now, due",
    [
        ("2024-10-27T00:29:59", "2024-10-26T00:30:00"),
        ("2024-10-27T00:30:00", "2024-10-27T00:30:00"),
        ("2024-10-27T01:00:00", "2024-10-27T00:30:00"),  # 02:00 CET: the first 02:30 is the newest
        ("2024-10-27T01:29:59", "2024-10-27T00:30:00"),
        ("2024-10-27T01:30:00", "2024-10-27T01:30:00"),  # the second 02:30, in CET
        ("2024-10-27T01:31:00", "2024-10-27T01:30:00"),
        ("2024-10-27T12:00:00", "2024-10-27T01:30:00"),
        ("2024-10-28T01:29:59", "2024-10-27T01:30:00"),
        ("2024-10-28T01:30:00", "2024-10-28T01:30:00"),
    ],
)
def test_latest_due_on_the_fall_back_day(now, due):
    assert latest_due("30 2 * * *", "Europe/Berlin", utc(now)) == utc(due)


# 02:31 to 02:59 CEST, after the first 02:30 and before the clocks go back.
FALL_BACK_NIGHT = ["2024-10-27T00:30:01", "2024-10-27T00:31:00", "2024-10-27T00:45:00", "2024-10-27T00:59:59"]


@pytest.mark.parametrize("now", FALL_BACK_NIGHT)
def test_latest_due_is_never_after_now_in_the_repeated_hour(now):
    assert latest_due("30 2 * * *", "Europe/Berlin", utc(now)) <= utc(now)


# the scheduler, in process: a fake run queue, a real local store, an injected clock -----------
class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def __call__(self) -> datetime:
        return self.moment


class FakeRuns:
    """What the scheduler uses of the runtime's runs: submit, and refuse (which a test never expects)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.started: list[tuple[str, str]] = []  # (due, when it was started), both UTC ISO

    async def submit(self, ref: str, params: dict[str, Any], trigger: dict[str, Any]) -> None:
        assert ref == "p@1"
        self.started.append((trigger["due"], self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")))

    def refuse(self, *args: Any) -> None:
        raise AssertionError(f"unexpected refusal {args}")


def NO_EVENTS(upstream: str, key: str) -> str:
    raise AssertionError("these tests finish no run")


def newest_of(products: dict[str, tuple[dict[str, Any], ...]]):
    """The engine's ``newest`` over a catalog of {name: triggers}, every product at version 1."""
    return lambda: [(name, 1, trigs) for name, trigs in products.items()]


def scheduler(tmp_path, start: str, expr: str, tz: str = "UTC") -> tuple[Triggers, FakeRuns, FakeClock]:
    clock = FakeClock(utc(start))
    runs = FakeRuns(clock)
    products = {"p": ({"schedule": expr, "timezone": tz},)}
    return Triggers(newest_of(products), runs, Repository(LocalStore(tmp_path / "store")), derive=NO_EVENTS, clock=clock), runs, clock


def every(start: str, end: str, minutes: int = 1) -> list[datetime]:
    """Instants from ``start`` up to (not including) ``end``, ``minutes`` apart."""
    moment, stop, out = utc(start), utc(end), []
    while moment < stop:
        out.append(moment)
        moment += timedelta(minutes=minutes)
    return out


async def tick_at(trig: Triggers, clock: FakeClock, moments: list[datetime]) -> None:
    for moment in moments:
        clock.moment = moment
        await trig.tick()


# Hourly ticks, and minute ticks through the nights around a DST change.
SPRING_TICKS = [
    *every("2024-03-30T12:00:00", "2024-03-31T00:00:00", 60),
    *every("2024-03-31T00:00:00", "2024-03-31T02:00:00"),
    *every("2024-03-31T02:00:00", "2024-04-01T00:00:00", 60),
    *every("2024-04-01T00:00:00", "2024-04-01T01:00:00"),
]
FALL_TICKS = [
    *every("2024-10-26T12:00:00", "2024-10-27T00:00:00", 60),
    *every("2024-10-27T00:00:00", "2024-10-27T02:00:00"),
    *every("2024-10-27T02:00:00", "2024-10-28T01:00:00", 60),
    *every("2024-10-28T01:00:00", "2024-10-28T02:00:00"),
]


async def test_a_schedule_runs_once_per_due_time(tmp_path):
    trig, runs, clock = scheduler(tmp_path, "2024-05-01T10:00:30", "*/15 * * * *")
    await tick_at(trig, clock, every("2024-05-01T10:00:30", "2024-05-01T11:01:00"))
    assert runs.started == [
        ("2024-05-01T10:15:00Z", "2024-05-01T10:15:30Z"),
        ("2024-05-01T10:30:00Z", "2024-05-01T10:30:30Z"),
        ("2024-05-01T10:45:00Z", "2024-05-01T10:45:30Z"),
        ("2024-05-01T11:00:00Z", "2024-05-01T11:00:30Z"),
    ]


async def test_a_first_start_does_not_run_the_due_time_before_it(tmp_path):
    trig, runs, clock = scheduler(tmp_path, "2024-05-01T10:14:00", "0 * * * *")
    await trig.tick()
    assert runs.started == []


async def test_the_spring_forward_day_runs_a_0230_schedule_once_after_the_gap(tmp_path):
    trig, runs, clock = scheduler(tmp_path, "2024-03-30T12:00:00", "30 2 * * *", "Europe/Berlin")
    await tick_at(trig, clock, SPRING_TICKS)
    assert runs.started == [
        ("2024-03-31T01:00:00Z", "2024-03-31T01:00:00Z"),  # 03:00 CEST, right after the gap
        ("2024-04-01T00:30:00Z", "2024-04-01T00:30:00Z"),  # 02:30 CEST
    ]


async def test_the_fall_back_day_starts_the_first_0230_on_time(tmp_path):
    trig, runs, clock = scheduler(tmp_path, "2024-10-26T12:00:00", "30 2 * * *", "Europe/Berlin")
    await tick_at(trig, clock, FALL_TICKS)
    assert runs.started[0] == ("2024-10-27T00:30:00Z", "2024-10-27T00:30:00Z")  # 02:30 CEST
    assert runs.started[-1] == ("2024-10-28T01:30:00Z", "2024-10-28T01:30:00Z")  # 02:30 CET, next day


async def test_the_fall_back_day_never_starts_a_run_before_its_due_time(tmp_path):
    trig, runs, clock = scheduler(tmp_path, "2024-10-26T12:00:00", "30 2 * * *", "Europe/Berlin")
    await tick_at(trig, clock, FALL_TICKS)
    early = [(due, at) for due, at in runs.started if at < due]
    assert early == []


async def test_downtime_yields_exactly_one_catch_up_run_for_the_newest_missed_due_time(tmp_path):
    sid = schedule_id({"schedule": "0 * * * *", "timezone": "UTC"})
    repo = Repository(LocalStore(tmp_path / "store"))
    assert repo.claim_schedule("p", sid, utc("2024-05-01T09:00:00"))  # the last run before the runtime stopped
    # Restarted six and a half hours later: 10:00 ... 15:00 were missed.
    trig, runs, clock = scheduler(tmp_path, "2024-05-01T15:30:00", "0 * * * *")
    await trig.tick()
    await trig.tick()
    assert runs.started == [("2024-05-01T15:00:00Z", "2024-05-01T15:30:00Z")]
    clock.moment = utc("2024-05-01T16:00:00")
    await trig.tick()
    assert runs.started[1:] == [("2024-05-01T16:00:00Z", "2024-05-01T16:00:00Z")]


async def test_a_due_time_claimed_by_another_replica_is_not_run_again(tmp_path):
    sid = schedule_id({"schedule": "0 * * * *", "timezone": "UTC"})
    trig, runs, clock = scheduler(tmp_path, "2024-05-01T10:30:00", "0 * * * *")
    await trig.tick()
    assert trig.claims.claim_schedule("p", sid, utc("2024-05-01T11:00:00"))  # the other replica was first
    clock.moment = utc("2024-05-01T11:00:05")
    await trig.tick()
    clock.moment = utc("2024-05-01T12:00:05")
    await trig.tick()
    assert runs.started == [("2024-05-01T12:00:00Z", "2024-05-01T12:00:05Z")]


async def test_a_schedule_published_while_running_starts_from_now(tmp_path):
    clock = FakeClock(utc("2024-05-01T10:30:00"))
    runs = FakeRuns(clock)
    products: dict[str, tuple[dict[str, Any], ...]] = {}
    trig = Triggers(newest_of(products), runs, Repository(LocalStore(tmp_path / "store")), derive=NO_EVENTS, clock=clock)
    await trig.tick()  # the scheduler has ticked once with nothing to run
    products["p"] = ({"schedule": "0 * * * *"},)
    await trig.tick()
    assert runs.started == []
    clock.moment = utc("2024-05-01T11:00:00")
    await trig.tick()
    assert runs.started == [("2024-05-01T11:00:00Z", "2024-05-01T11:00:00Z")]


# loops ---------------------------------------------------------------------------------------
def on(*products: str, outcome: str = "succeeded") -> list[dict[str, Any]]:
    return [{"event": f"product.{p}.{outcome}"} for p in products]


@pytest.mark.parametrize(
    "name, triggers, catalog, chain",
    [
        ("a", on("b"), {"b": on("a")}, "a → b → a"),
        ("a", on("c"), {"b": on("a"), "c": on("b")}, "a → b → c → a"),
        ("a", on("c", outcome="failed"), {"b": on("a", outcome="failed"), "c": on("b")}, "a → b → c → a"),
        # the shortest chain is named when there are several
        ("a", on("d"), {"b": on("a"), "c": on("b"), "d": on("c", "a")}, "a → d → a"),
    ],
)
def test_a_trigger_that_closes_a_chain_is_a_loop_naming_the_chain(name, triggers, catalog, chain):
    found = messages(loop_problems(name, triggers, catalog))
    assert len(found) == 1
    assert found[0].startswith("Trigger 0: event ")
    assert found[0].endswith(f"makes a loop: {chain}.")


@pytest.mark.parametrize(
    "name, triggers, catalog",
    [
        ("a", on("b"), {}),  # b is not published yet
        ("a", on("b"), {"b": []}),
        ("a", on("b"), {"b": on("c"), "c": []}),  # a chain, no cycle
        ("a", on("b", "c"), {"b": on("c")}),  # a diamond is not a loop
        ("a", [{"event": "orders.updated"}, {"schedule": "* * * * *"}], {"b": on("a")}),
        ("a", on("a"), {}),  # its own topic is check_triggers' problem, not a loop
        ("a", "not a list", {"b": on("a")}),
        ("a", on("b"), {"a": on("b"), "b": []}),  # the republished product's old triggers are replaced
    ],
)
def test_no_loop_no_problem(name, triggers, catalog):
    assert loop_problems(name, triggers, catalog) == []


def test_a_republish_that_drops_the_loop_is_not_judged_by_its_old_triggers():
    catalog = {"a": on("b"), "b": on("c"), "c": []}
    assert messages(loop_problems("c", on("a"), catalog))[0].endswith("makes a loop: c → b → a → c.")
    assert loop_problems("a", [], {**catalog, "c": on("a")}) == []


def test_only_the_triggers_that_close_a_loop_are_reported():
    found = messages(loop_problems("a", [*on("x"), *on("b"), {"event": "orders"}, *on("c")], {"b": on("a"), "c": []}))
    assert len(found) == 1
    assert found[0].startswith("Trigger 1: ")


# lineage -------------------------------------------------------------------------------------
def test_upstream_of_lists_each_subscribed_product_once_sorted():
    trigs = [*on("zeta"), *on("alpha", outcome="failed"), *on("zeta", outcome="failed"), {"event": "orders"}, {"schedule": "* * * * *"}]
    assert upstream_of(trigs) == ["alpha", "zeta"]


@pytest.mark.parametrize(
    "trigs",
    [
        None,
        "product.a.succeeded",
        [{"event": "product.a.started"}],
        [{"event": "product.A.succeeded"}],
        [{"event": "products.a.succeeded"}],
        [{"event": "product.a.succeeded.x"}],
        [{"event": 3}],
        ["product.a.succeeded"],
    ],
)
def test_upstream_of_ignores_what_is_not_a_product_topic(trigs):
    assert upstream_of(trigs) == []


def test_downstream_of_lists_the_subscribers_sorted():
    subs = {"c": on("a"), "b": on("a", outcome="failed"), "d": on("b"), "a": []}
    assert downstream_of("a", subs) == ["b", "c"]
    assert downstream_of("b", subs) == ["d"]
    assert downstream_of("d", subs) == []


def test_the_lineage_graph_has_an_edge_per_subscription_and_marks_unpublished_sources():
    subs = {
        "report": [*on("clean"), {"event": "orders.updated"}],
        "clean": [*on("raw"), *on("raw", outcome="failed")],
        "alerts": [{"schedule": "* * * * *"}],
    }
    assert lineage_graph(subs) == {
        "nodes": [
            {"name": "alerts", "published": True},
            {"name": "clean", "published": True},
            {"name": "report", "published": True},
            {"name": "raw", "published": False},
        ],
        "edges": [
            {"from": "raw", "to": "clean", "topic": "product.raw.succeeded"},
            {"from": "raw", "to": "clean", "topic": "product.raw.failed"},
            {"from": "clean", "to": "report", "topic": "product.clean.succeeded"},
        ],
    }


def test_the_lineage_of_an_empty_catalog_is_empty():
    assert lineage_graph({}) == {"nodes": [], "edges": []}


# $event mapping ------------------------------------------------------------------------------
PAYLOAD = {"region": "EU", "result": {"rows": 3, "by": {"day": [10, 20]}, "none": None}, "list": [{"x": 1}]}


@pytest.mark.parametrize(
    "ref, value",
    [
        ("$event.region", "EU"),
        ("$event.result", PAYLOAD["result"]),
        ("$event.result.rows", 3),
        ("$event.result.by.day", [10, 20]),
        ("$event.result.by.day.1", 20),
        ("$event.list.0.x", 1),
        ("$event.result.none", None),
    ],
)
def test_an_event_reference_takes_that_path_of_the_payload(ref, value):
    assert map_parameters({"p": ref}, PAYLOAD) == {"p": value}


@pytest.mark.parametrize(
    "ref",
    [
        "$event.missing",
        "$event.result.missing",
        "$event.region.length",  # a string is not a mapping
        "$event.result.rows.x",  # an int is not a mapping
        "$event.result.none.x",  # null is not a mapping
        "$event.result.by.day.2",  # past the list's end
        "$event.result.by.day.-1",
        "$event.result.by.day.x",
        "$event.",
    ],
)
def test_a_path_the_payload_does_not_have_is_a_clear_parameter_problem(ref):
    with pytest.raises(InvalidParameters) as info:
        map_parameters({"ok": "$event.region", "bad": ref}, PAYLOAD)
    assert info.value.details == [
        {"parameter": "bad", "message": f"Parameter 'bad' maps {ref!r}, which the event payload does not have."}
    ]


@pytest.mark.parametrize("payload", [None, "text", 3, ["EU"]])
def test_a_payload_that_is_not_an_object_has_no_named_paths(payload):
    with pytest.raises(InvalidParameters):
        map_parameters({"p": "$event.region"}, payload)


@pytest.mark.parametrize(
    "literal",
    ["EU", "event.region", "$events.region", "$event", " $event.region", "", 3, 2.5, True, None, ["$event.region"], {"a": "$event.region"}],
)
def test_literal_values_are_passed_unchanged(literal):
    assert map_parameters({"p": literal}, PAYLOAD) == {"p": literal}


def test_every_missing_path_is_listed():
    with pytest.raises(InvalidParameters) as info:
        map_parameters({"a": "$event.x", "b": 1, "c": "$event.y"}, PAYLOAD)
    assert [d["parameter"] for d in info.value.details] == ["a", "c"]
