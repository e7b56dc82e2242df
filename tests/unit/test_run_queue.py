"""The run queue chosen from ``settings.queue``, the Redis link's URL checks, derived run ids, and embedded settling."""

from __future__ import annotations

import pytest

from kernel_runtime.errors import InvalidConfig
from kernel_runtime.model.records import FAILED, QUEUED, RUN_ID_RE, RUNNING, Run
from kernel_runtime.runtime.queue import EmbeddedQueue
from kernel_runtime.runtime.queues import open_queue
from kernel_runtime.runtime.redis_queue import RedisQueue
from kernel_runtime.settings import QueueSettings, Settings
from kernel_runtime.store.redis_link import connect, redacted


def test_without_a_url_the_queue_is_embedded_and_bounded_by_the_queue_size():
    queue = open_queue(Settings().queue, 3)
    assert isinstance(queue, EmbeddedQueue)
    assert queue.room() == 3


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380/2", "unix:///run/redis.sock"])
def test_a_redis_url_picks_the_shared_queue_without_connecting(url):
    assert isinstance(open_queue(QueueSettings(url=url), 10), RedisQueue)


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis+sentinel://x"])
def test_a_url_that_is_not_redis_is_refused_with_the_form_to_use(url):
    with pytest.raises(InvalidConfig, match="redis://HOST:PORT/DB"):
        open_queue(QueueSettings(url=url), 10)


def test_a_bad_port_is_refused_naming_the_option_and_hiding_the_password():
    with pytest.raises(InvalidConfig) as caught:
        connect(QueueSettings(url="redis://user:s3cret@host:notaport/0"))
    assert "--queue" in caught.value.message and "s3cret" not in caught.value.message


def test_redacted_hides_only_the_password():
    assert redacted("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redacted("redis://:s3cret@host:6379/0") == "redis://***@host:6379/0"
    assert redacted("redis://host:6379/0") == "redis://host:6379/0"


def test_derived_ids_are_run_ids_stable_per_link_and_differ_between_links_and_secrets():
    queue, other = EmbeddedQueue(1), EmbeddedQueue(1)
    first = queue.derived_id("a" * 32, "down@1/0")
    assert RUN_ID_RE.fullmatch(first)
    assert queue.derived_id("a" * 32, "down@1/0") == first
    assert queue.derived_id("a" * 32, "down@1/1") != first
    assert queue.derived_id("b" * 32, "down@1/0") != first
    assert other.derived_id("a" * 32, "down@1/0") != first  # another secret: not guessable from the upstream id


def test_replicas_have_distinct_ids():
    assert len({EmbeddedQueue(1).replica for _ in range(20)}) == 20


def run(status: str, product: str = "p") -> Run:
    return Run(run_id="0" * 32, product=product, version=1, parameters={}, trigger={"kind": "http"}, status=status)


async def test_embedded_settling_requeues_queued_runs_within_the_bound_and_fails_the_rest():
    queue = EmbeddedQueue(1)
    kept, beyond, running, gone = run(QUEUED), run(QUEUED), run(RUNNING), run(QUEUED, "gone")
    failed = await queue.settle([kept, beyond, running, gone], lambda r: r.product == "p")
    assert [(r, reason) for r, reason in failed] == [
        (beyond, "was queued beyond the background queue's bound of 1"),
        (running, "was running"),
        (gone, "was queued for a product no longer published"),
    ]
    assert queue.depth() == 1 and (await queue.take()).run is kept
    assert FAILED not in {r.status for r in (kept, beyond, running, gone)}  # recording them is the caller's
