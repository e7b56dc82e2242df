"""The trigger engine: runs products on schedules and events, as ordinary background runs.

It applies the pure rules of :mod:`.rules` and needs only what it is given: the
newest version of each product with its triggers (a callable), the runtime's runs
(:class:`Submitter`), the store's schedule claims (:class:`ScheduleClaims`) and a
clock. A run's finish triggers its subscribers' runs through :meth:`Triggers.triggered_by`: stored
but not queued, with ids derived from the finished run's, so the caller queues them together with
letting the finished run go and a redelivered finish makes the same runs, not more. A schedule's due time is claimed with an exclusive create in the store
(``schedules/{product}/{schedule-id}/{due}``) before it runs, so replicas
sharing a store run it once between them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

from ..errors import InvalidParameters, InvalidRequest, NbmeshError, NotFound, QueueFull, quoted
from ..model.records import FAILED, QUEUED, SUCCEEDED, Run
from ..settings import TriggerSettings
from .rules import TOPIC_RE, is_topic, iso, latest_due, map_parameters, schedule_id

_INSTANT = timedelta(microseconds=1)
log = logging.getLogger("nbmesh.triggers")

# (name, version, triggers) of each product's newest version.
Subscriptions = Callable[[], list[tuple[str, int, tuple[dict[str, Any], ...]]]]
Clock = Callable[[], datetime]


class Submitter(Protocol):
    """Where triggered runs go: the runtime's background runs."""

    async def submit(self, ref: str, params: Any, trigger: dict[str, Any]) -> Run: ...

    async def prepare(
        self, name: str, version: int, values: dict[str, Any], trigger: dict[str, Any], run_id: str | None = None
    ) -> Run | None: ...

    async def validated(self, ref: str, params: Any) -> tuple[str, int, dict[str, Any]]: ...

    def refuse(
        self, name: str, version: int, params: dict[str, Any], trigger: dict[str, Any], exc: NbmeshError, run_id: str | None = None
    ) -> Run: ...

    def queue_room(self) -> int: ...


class ScheduleClaims(Protocol):
    """The store's record of which due times of a schedule have run (blocking calls, run in a thread)."""

    def claim_schedule(self, name: str, schedule_id: str, due: datetime) -> bool: ...

    def last_schedule_claim(self, name: str, schedule_id: str) -> datetime | None: ...


def utc_now() -> datetime:
    """The production clock."""
    return datetime.now(timezone.utc)


class FileClock:
    """A clock that reads now from a file (``NBMESH_CLOCK_FILE``), for tests and demos.

    Rewriting the file's one line moves time forward instead of waiting for cron
    minutes to pass. A file that holds no ISO-8601 time falls back to the real clock.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> datetime:
        try:
            with open(self.path) as fh:
                text = fh.read().strip()
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        except (OSError, ValueError):
            log.warning("NBMESH_CLOCK_FILE %s holds no ISO-8601 time; using the real clock", self.path)
        return utc_now()


class Triggers:
    """Runs products on schedules and events, through the runtime's background queue.

    :meth:`triggered_by` turns a finished run into its ``product.{name}.succeeded|failed`` event
    and the runs of that event's subscribers.
    """

    def __init__(
        self,
        newest: Subscriptions,
        runs: Submitter,
        claims: ScheduleClaims,
        derive: Callable[[str, str], str],
        clock: Clock = utc_now,
        tick: float = TriggerSettings.tick,
    ) -> None:
        self.newest = newest
        self.runs = runs
        self.derive = derive
        self.claims = claims
        self.clock = clock
        self.tick_seconds = tick
        self._cursors: dict[tuple[str, str], datetime] = {}
        self._ticked = False

    # events -----------------------------------------------------------------------
    def subscribers(self, topic: str) -> list[tuple[str, int, dict[str, Any]]]:
        return [
            (name, version, trig)
            for name, version, trigs in self.newest()
            for trig in trigs
            if trig.get("event") == topic
        ]

    async def emit(self, topic: str, payload: dict[str, Any]) -> list[Run]:
        """Publish an event: queue a run of every subscribed product, or none when the queue has no room."""
        if not is_topic(topic):
            raise InvalidRequest(f"Invalid event topic {quoted(topic)}: a topic matches {TOPIC_RE.pattern} (ASCII).")
        subs = self.subscribers(topic)
        room = self.runs.queue_room()
        if len(subs) > room:
            raise QueueFull(
                f"The background queue cannot take the {len(subs)} run(s) event {topic!r} triggers "
                f"(room for {room}); nothing was queued, try again later."
            )
        return [await self._start(name, version, trig, payload, topic) for name, version, trig in subs]

    async def _start(self, name: str, version: int, trig: dict[str, Any], payload: Any, topic: str) -> Run:
        trigger = {"kind": "event", "topic": topic}
        params = trig.get("parameters", {})
        try:
            params = map_parameters(params, payload)
            return await self.runs.submit(f"{name}@{version}", params, trigger)
        except (InvalidParameters, QueueFull, NotFound) as exc:
            return self.runs.refuse(name, version, params, trigger, exc)

    def subscribed(self, run: Run) -> bool:
        """Whether any product subscribes to the event of ``run``'s finish."""
        return bool(self.subscribers(_finished_event(run)[0]))

    async def triggered_by(self, run: Run) -> list[Run]:
        """The runs of the subscribers of ``run``'s finish event, stored as queued for the caller to queue.

        Each run's id derives from ``run``'s and the subscription, so asking again (a redelivered
        finish) stores the same runs, and none whose record is final already. A run that cannot
        be made (its parameters, its product gone) is recorded as failed, so no link vanishes silently.
        """
        topic, payload = _finished_event(run)
        trigger = {"kind": "event", "topic": topic}
        made = []
        for index, (name, version, trig) in enumerate(self.subscribers(topic)):
            run_id = self.derive(run.run_id, f"{name}@{version}/{index}")
            params = trig.get("parameters", {})
            try:
                params = map_parameters(params, payload)
                _, _, values = await self.runs.validated(f"{name}@{version}", params)
                made.append(await self.runs.prepare(name, version, values, trigger, run_id))
            except NbmeshError as exc:
                self.runs.refuse(name, version, params, trigger, exc, run_id)
        return [triggered for triggered in made if triggered is not None and triggered.status == QUEUED]

    # schedules ------------------------------------------------------------------------
    async def run_scheduler(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a store outage or a bad record must not stop the schedules
                log.exception("scheduler tick failed; retrying")
            await asyncio.sleep(self.tick_seconds)

    async def tick(self) -> None:
        """Start every schedule whose due time has come, once across all replicas sharing the store."""
        now = self.clock()
        live = {
            (name, schedule_id(trig)): (version, trig)
            for name, version, trigs in self.newest()
            for trig in trigs
            if "schedule" in trig
        }
        for key in set(self._cursors) - set(live):
            del self._cursors[key]
        for (name, sid), (version, trig) in live.items():
            due = latest_due(trig["schedule"], trig.get("timezone", "UTC"), now)
            cursor = self._cursors.get((name, sid))
            if cursor is None:
                cursor = await self._initial_cursor(name, sid, trig, due, now)
                self._cursors[(name, sid)] = cursor
            if due <= cursor:
                continue
            # Only the newest missed due time runs: downtime yields one catch-up run, not a flood.
            if await asyncio.to_thread(self.claims.claim_schedule, name, sid, due):
                trigger = {"kind": "schedule", "schedule": trig["schedule"], "due": iso(due)}
                await self._start_scheduled(name, version, trig, trigger)
            self._cursors[(name, sid)] = due
        self._ticked = True

    async def _initial_cursor(self, name: str, sid: str, trig: dict[str, Any], due: datetime, now: datetime) -> datetime:
        last = await asyncio.to_thread(self.claims.last_schedule_claim, name, sid)
        if self._ticked:
            # A schedule this scheduler sees while running. If another replica already claimed the
            # due time before ``due`` (it saw the schedule a tick earlier), the schedule stands there
            # and ``due`` is a real due time, to run once across replicas. Otherwise it was published
            # just now and starts from now; claiming the due time just passed tells the replicas (and
            # later restarts) that it predates the schedule.
            before = latest_due(trig["schedule"], trig.get("timezone", "UTC"), due - _INSTANT)
            if last is not None and last >= before:
                return last
            await asyncio.to_thread(self.claims.claim_schedule, name, sid, due)
            return now
        # At startup the last claim, by any replica or an earlier life of this one, is where the
        # schedule stands; a later due time was missed while down and runs once.
        return last or now

    async def _start_scheduled(self, name: str, version: int, trig: dict[str, Any], trigger: dict[str, Any]) -> None:
        params = trig.get("parameters", {})
        try:
            await self.runs.submit(f"{name}@{version}", params, trigger)
        except NbmeshError as exc:
            self.runs.refuse(name, version, params, trigger, exc)


def _finished_event(run: Run) -> tuple[str, dict[str, Any]]:
    """The topic and payload of ``run``'s finish: ``product.{name}.succeeded|failed``."""
    outcome = SUCCEEDED if run.status == SUCCEEDED else FAILED  # a timed-out run is a failed one here
    payload: dict[str, Any] = {"run_id": run.run_id, "product": run.product, "version": run.version}
    if run.status == SUCCEEDED:
        payload["result"] = run.result
    else:
        payload["error"] = run.error
    return f"product.{run.product}.{outcome}", payload
