"""Benchmark: what recording IntegrityErrors costs: nothing for requests that raise nothing, two statements per event.

``python benchmarks/events.py [--requests 500] [--rounds 60] [--errors 300] [--storm 10000] [--threads 8]``

Creates a throwaway database on the configured PostgreSQL server (the
embedded one without ``DATABASE_URL``), migrates it, and builds two Django
WSGI handlers in one process from the demo project's settings (``DEBUG``
off, persistent connections so that no request pays a connection): one with
the demo's ``MIDDLEWARE``, which ends with
``integrity.middleware.IntegrityErrorMiddleware``, and one with the same
list without it. Requests go through the whole handler stack (signals,
every middleware, URL resolving, the response's ``close()``) as WSGI calls.

1. Requests that raise nothing: ``GET /ok/``, a view returning
   ``HttpResponse("ok")`` without a query. In ``--rounds`` interleaved rounds
   (which handler goes first alternates), ``--requests`` requests per
   handler and round, garbage collection off while timing, on the thread's
   CPU time (``time.thread_time``: these requests wait on nothing, and it
   leaves out what other processes of a busy machine take). It prints the
   medians per request and the median of the per-round ratios, with
   ``INTEGRITY_CAPTURE_HANDLED`` off (the default; the target) and on
   (shown), and with a pass-through middleware in its place (the floor any
   middleware costs). It also counts the queries of 100 requests through
   each handler. Targets: ratio <= 1.02 with the default settings, and zero
   queries.
2. The error path: ``GET /duplicate/``, a view whose ``Tag.objects.create``
   hits the unique constraint on ``shop_tag.name`` (a real IntegrityError,
   a 500 response). ``--errors`` requests through the middleware, each
   inside ``CaptureQueriesContext``: the statements on the event tables per
   event (target: at most 2, one upsert of the group plus one sample while
   the group has a free sample slot; 1 once it is full), and the group must
   count every event and keep ``INTEGRITY_EVENT_SAMPLES`` samples. Then,
   interleaved as in 1., error requests with and without the middleware:
   what recording adds per event, with a full group (1 statement) and with
   every event sampled (2 statements, ``INTEGRITY_EVENT_SAMPLES`` raised
   out of reach). Then where in the code: the group must count the view's
   ``Tag.objects.create`` line as its location; error requests with
   locations on (``INTEGRITY_EVENT_FRAMES`` 5, the default) and off (0),
   interleaved, and what reading the frames of one traceback costs alone.
   Then the hourly and daily counters (``integrity.events.trends``, counted
   in the group's upsert statement): they must add up to the group's count;
   error requests with locations and counters on (the defaults) and both
   off, interleaved: the ratio is what the error path pays for both.
3. The storm: ``--storm`` identical violations (each a real failing
   ``INSERT``, recorded with ``integrity.events.record``) from ``--threads``
   threads at once, each on its own connection. Target: one group,
   ``count`` equal to ``--storm``, exactly ``INTEGRITY_EVENT_SAMPLES``
   samples (``sampled`` too): slots are handed out by the group's row
   update, so concurrent writers can never overshoot them.

Exit code 0 when every target is met, 1 otherwise. The database is dropped
at the end, also on error. The whole run takes about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.sequences import (  # noqa: E402  (after the sys.path set-up)
    in_throwaway_database,
    median,
)

TARGET_RATIO = 1.02  # with / without the middleware, requests that raise nothing
STATEMENTS_PER_EVENT = 2  # upsert of the group + one sample while a slot is free
MIDDLEWARE_PATH = "integrity.middleware.IntegrityErrorMiddleware"
DUPLICATE = "bench duplicate"
STORM = "bench storm"

urlpatterns: list[Any] = []  # this module is the URLconf; filled once Django is set up


# --------------------------------------------------------------------------
# Django set-up, views and handlers
# --------------------------------------------------------------------------


def configure(db: dict[str, Any], name: str) -> None:
    """The demo settings on the throwaway database: DEBUG off, persistent connections, this URLconf, the default
    ``INTEGRITY_CAPTURE_HANDLED``."""
    import django
    from django.conf import settings

    from demo import settings as demo_settings

    values = {k: getattr(demo_settings, k) for k in dir(demo_settings) if k.isupper()}
    values.update(
        DEBUG=False,
        DATABASES={"default": {**db, "NAME": name, "CONN_MAX_AGE": None}},
        ROOT_URLCONF=__name__,
        # The demo turns this on for its "handled" button; the target is about the default (off), and
        # the run measures "on" separately.
        INTEGRITY_CAPTURE_HANDLED=False,
    )
    settings.configure(**values)
    django.setup()


def ok(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


def duplicate(request: Any) -> Any:
    from django.http import HttpResponse

    from demo.shop.models import Tag

    Tag.objects.create(name=DUPLICATE)  # exists: IntegrityError (the location recorded)
    return HttpResponse("not reached")


class PassThrough:
    """The cheapest middleware there is: the floor any middleware costs (diagnostic)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)


def set_up_urls() -> None:
    from django.urls import path

    urlpatterns[:] = [path("ok/", ok), path("duplicate/", duplicate)]


def handler(middleware: list[str]) -> Any:
    """A WSGI handler with this ``MIDDLEWARE`` (read when the handler is built)."""
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=middleware):
        return WSGIHandler()


def environ_for(path: str) -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    setup_testing_defaults(env)
    return env


def call(app: Any, template: dict[str, Any]) -> str:
    """One WSGI request; its status line. ``close()`` sends ``request_finished``, as a server does."""
    status: list[str] = []

    def start_response(line: str, headers: Any, exc_info: Any = None) -> None:
        status.append(line)

    env = dict(template)
    env["wsgi.input"] = io.BytesIO(b"")
    response = app(env, start_response)
    try:
        b"".join(response)
    finally:
        response.close()
    return status[0]


def block(
    app: Any, template: dict[str, Any], n: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Microseconds per request over ``n`` requests, garbage collection off.

    ``time.thread_time`` (this thread's CPU time) leaves out the time other
    processes on a busy machine take the CPU: for requests that wait on no
    I/O it is their cost, with much less noise than the wall clock.
    """
    gc.collect()
    gc.disable()
    try:
        start = clock()
        for _ in range(n):
            call(app, template)
        return (clock() - start) * 1e6 / n
    finally:
        gc.enable()


def interleaved(
    apps: dict[str, Any],
    template: dict[str, Any],
    n: int,
    rounds: int,
    around: Callable[[str], Any],
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """``rounds`` rounds of ``n`` requests per handler, the order alternating; ``around(name)`` wraps each."""
    times: dict[str, list[float]] = {name: [] for name in apps}
    names = list(apps)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            with around(name):
                times[name].append(block(apps[name], template, n, clock))
    return times


@contextmanager
def nothing(name: str) -> Iterator[None]:
    yield


@contextmanager
def quiet_500s() -> Iterator[None]:
    """Django logs every 500 with its traceback: not what is measured."""
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def captured() -> Any:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    return CaptureQueriesContext(connection)


def ratios(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median of the per-round ratios a/b (each round's pair ran back to back)."""
    return median([x / y for x, y in zip(times[a], times[b], strict=True)])


# --------------------------------------------------------------------------
# 1. Requests that raise nothing
# --------------------------------------------------------------------------


def no_error_path(with_mw: Any, without_mw: Any, floor: Any, args: argparse.Namespace) -> bool:
    from django.test.utils import override_settings

    template = environ_for("/ok/")
    for app in (with_mw, without_mw):
        assert call(app, template).startswith("200"), "GET /ok/ did not answer 200"
    queries = {}
    for label, app in (("with", with_mw), ("without", without_mw)):
        with captured() as ctx:
            for _ in range(100):
                call(app, template)
        queries[label] = len(ctx.captured_queries)
    for app in (with_mw, without_mw):
        block(app, template, max(args.requests // 4, 50))  # warm-up

    capture_on = override_settings(INTEGRITY_CAPTURE_HANDLED=True)

    @contextmanager
    def around(name: str) -> Iterator[None]:
        if name == "with, capture handled":
            with capture_on:
                yield
        else:
            yield

    apps = {
        "without": without_mw,
        "with": with_mw,
        "with, capture handled": with_mw,
        "pass-through instead (floor)": floor,
    }
    times = interleaved(apps, template, args.requests, args.rounds, around, time.thread_time)
    base = median(times["without"])
    print(
        f"\n1. GET /ok/ (no query, nothing raised): {args.rounds} interleaved rounds of "
        f"{args.requests:,} requests per handler; CPU time of the thread, median"
    )
    passed = True
    for name in apps:
        line = f"   {name + ' middleware':<38} {median(times[name]):7.1f} µs/request"
        if name != "without":
            ratio = ratios(times, name, "without")
            line += f"   ratio {ratio:.3f} (of medians {median(times[name]) / base:.3f})"
            if name == "with":
                ok_ = ratio <= TARGET_RATIO
                passed &= ok_
                line += f", target <= {TARGET_RATIO}: {'ok' if ok_ else 'FAILED'}"
        print(line)
    zero = queries["with"] == 0 and queries["without"] == 0
    print(
        f"   queries in 100 requests: with {queries['with']}, without {queries['without']} "
        f"(target 0) {'ok' if zero else 'FAILED'}"
    )
    return passed and zero


# --------------------------------------------------------------------------
# 2. The error path
# --------------------------------------------------------------------------


def event_statements(ctx: Any) -> int:
    from integrity.models import Event, EventGroup

    tables = (EventGroup._meta.db_table, Event._meta.db_table)
    return sum(any(f'"{t}"' in q["sql"] for t in tables) for q in ctx.captured_queries)


def error_path(with_mw: Any, without_mw: Any, args: argparse.Namespace) -> bool:
    from django.test.utils import override_settings

    from demo.shop.models import Tag
    from integrity.conf import settings as integrity_settings
    from integrity.models import Event, EventGroup

    Tag.objects.create(name=DUPLICATE)
    template = environ_for("/duplicate/")
    limit = integrity_settings.EVENT_SAMPLES
    per_event: list[int] = []
    other: list[int] = []
    with quiet_500s():
        for _ in range(args.errors):
            with captured() as ctx:
                status = call(with_mw, template)
            assert status.startswith("500"), status
            per_event.append(event_statements(ctx))
            other.append(len(ctx.captured_queries) - per_event[-1])
        group = EventGroup.objects.get()
        samples = Event.objects.filter(group=group).count()
        counted = group.count == args.errors and samples == min(args.errors, limit) == group.sampled
        bounded = max(per_event) <= STATEMENTS_PER_EVENT
        sampled_events = min(args.errors, limit)
        print(
            f"\n2. GET /duplicate/ (a real IntegrityError, 500): {args.errors} requests through the middleware"
        )
        print(
            f"   statements on the event tables per event: max {max(per_event)} (target <= {STATEMENTS_PER_EVENT}) "
            f"{'ok' if bounded else 'FAILED'}; {per_event[:sampled_events].count(2)} of the first "
            f"{sampled_events} events 2 (upsert + sample), the {args.errors - sampled_events} after 1 "
            f"({per_event[sampled_events:].count(1)} were); the view's own queries per request: {max(other)}"
        )
        print(
            f"   group: count {group.count}, samples kept {samples}, sampled {group.sampled} "
            f"(expected {args.errors}, {min(args.errors, limit)}) {'ok' if counted else 'FAILED'}"
        )
        apps = {"without": without_mw, "with": with_mw}
        n = max(args.errors // 3, 20)
        rounds = max(args.rounds // 6, 3)
        for app in apps.values():
            block(app, template, n // 2)  # warm-up
        full = interleaved(apps, template, n, rounds, nothing)
        with override_settings(INTEGRITY_EVENT_SAMPLES=10**9):
            every = interleaved(apps, template, n, rounds, nothing)
        located, frames_us = locations_cost(group, with_mw, template, n, rounds)
        counted_per_hour = counters_counted(group)
        both = interleaved({"on": with_mw, "off": with_mw}, template, n, rounds, counters_and_locations)
    print(f"   time per error request ({rounds} interleaved rounds of {n}):")
    for label, times, statements in (("group full", full, 1), ("every event sampled", every, 2)):
        w, wo = median(times["with"]), median(times["without"])
        print(
            f"   {label:<20} ({statements} statement{'s' if statements > 1 else ''}): without middleware "
            f"{wo / 1000:.2f} ms, with {w / 1000:.2f} ms: recording adds {(w - wo) / 1000:.2f} ms per event"
        )
    on, off = median(frames_us["locations on"]), median(frames_us["locations off"])
    print(
        f"   locations (INTEGRITY_EVENT_FRAMES 5, the default, against 0; group full): {on / 1000:.2f} ms "
        f"against {off / 1000:.2f} ms per event; reading the frames alone {located:.1f} µs per event"
    )
    on, off = median(both["on"]), median(both["off"])
    ratios = [a / b for a, b in zip(both["on"], both["off"], strict=True)]
    print(
        f"   locations and hourly/daily counters on (the defaults) against both off (INTEGRITY_EVENT_FRAMES 0, "
        f"INTEGRITY_EVENT_TRENDS False; group full): {on / 1000:.2f} ms against {off / 1000:.2f} ms per error "
        f"request, ratio {median(ratios):.3f} (median of {len(ratios)} rounds); counters "
        f"{'ok' if counted_per_hour else 'FAILED'}"
    )
    return bounded and counted and located >= 0 and counted_per_hour


@contextmanager
def counters_and_locations(name: str) -> Iterator[None]:
    from django.test.utils import override_settings

    if name == "off":
        with override_settings(INTEGRITY_EVENT_FRAMES=0, INTEGRITY_EVENT_TRENDS=False):
            yield
    else:
        yield


def counters_counted(group: Any) -> bool:
    """The group's hourly and daily counters each add up to its count (checked before the rounds whose "off" half
    counts no bucket)."""
    from django.db.models import Sum

    from integrity.events import trends

    group.refresh_from_db()
    buckets = dict(
        group.buckets.values_list("kind").annotate(total=Sum("count")).values_list("kind", "total")
    )
    print(
        f"   counters: {buckets.get(trends.HOUR, 0)} in this hour's buckets, {buckets.get(trends.DAY, 0)} in "
        f"today's (summed over the buckets), group count {group.count}"
    )
    return buckets.get(trends.HOUR, 0) == group.count == buckets.get(trends.DAY, 0)


def locations_cost(
    group: Any, with_mw: Any, template: dict[str, Any], n: int, rounds: int
) -> tuple[float, Any]:
    """The error path with locations on and off, interleaved; and ``locations.frames`` alone, in µs per call.

    Checks first that the group counts the view's own line (``duplicate``'s
    ``create``) as its location, so what is timed is a real walk of a real traceback.
    Returns -1 µs when the location is not that line.
    """
    import inspect

    from django.db import IntegrityError
    from django.test.utils import override_settings

    from demo.shop.models import Tag
    from integrity.events import locations

    lines, first = inspect.getsourcelines(duplicate)
    line = first + next(i for i, text in enumerate(lines) if "Tag.objects.create" in text)
    found = [(loc["file"], loc["line"]) for loc in locations.top(group.locations)]
    where = found == [("benchmarks/events.py", line)]
    print(
        f"   location counted: {', '.join(f'{f}:{n}' for f, n in found) or 'none'} "
        f"(expected benchmarks/events.py:{line}) {'ok' if where else 'FAILED'}"
    )
    frames_off = override_settings(INTEGRITY_EVENT_FRAMES=0)

    @contextmanager
    def around(name: str) -> Iterator[None]:
        if name == "locations off":
            with frames_off:
                yield
        else:
            yield

    times = interleaved({"locations on": with_mw, "locations off": with_mw}, template, n, rounds, around)
    try:
        Tag.objects.create(name=DUPLICATE)
    except IntegrityError as exc:
        error = exc
    calls = 2000
    start = time.thread_time()
    for _ in range(calls):
        locations.frames(error)
    alone = (time.thread_time() - start) * 1e6 / calls
    return (alone if where else -1.0), times


# --------------------------------------------------------------------------
# 3. The storm
# --------------------------------------------------------------------------


def storm(args: argparse.Namespace) -> bool:
    from django.db import IntegrityError, connections

    from demo.shop.models import Tag
    from integrity.conf import settings as integrity_settings
    from integrity.events import recording as events
    from integrity.models import Event, EventGroup

    Event.objects.all().delete()
    EventGroup.objects.all().delete()
    Tag.objects.create(name=STORM)
    limit = integrity_settings.EVENT_SAMPLES
    shares = [args.storm // args.threads + (i < args.storm % args.threads) for i in range(args.threads)]
    failures: list[BaseException] = []
    start_line = threading.Barrier(args.threads)

    def worker(count: int) -> None:
        try:
            start_line.wait()
            for _ in range(count):
                try:
                    Tag.objects.create(name=STORM)
                except IntegrityError as exc:
                    events.record(exc)
                else:
                    raise AssertionError("the storm's INSERT did not fail")
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - begin
    if failures:
        raise failures[0]
    groups = list(EventGroup.objects.all())
    samples = Event.objects.count()
    passed = len(groups) == 1 and groups[0].count == args.storm
    passed &= samples == min(limit, args.storm) == groups[0].sampled if groups else False
    print(
        f"\n3. Storm: {args.storm:,} identical violations (real failing INSERTs, events.record) "
        f"from {args.threads} threads"
    )
    count = groups[0].count if groups else 0
    print(
        f"   {len(groups)} group, count {count:,}, samples {samples} (INTEGRITY_EVENT_SAMPLES {limit}), "
        f"sampled {groups[0].sampled if groups else '-'}: {'ok' if passed else 'FAILED'}"
    )
    print(
        f"   {elapsed:.1f} s: {args.storm / elapsed:,.0f} violations raised and recorded per second "
        f"({elapsed * 1e6 / args.storm * args.threads:.0f} µs per violation per thread)"
    )
    return passed


# --------------------------------------------------------------------------


def benchmark(args: argparse.Namespace) -> bool:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    t0 = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'), current_setting('fsync'), "
            "current_setting('synchronous_commit')"
        )
        version, fsync, synchronous = cursor.fetchone()
    print(
        f"set-up: migrate {time.perf_counter() - t0:.1f}s; PostgreSQL {version}, fsync {fsync}, "
        f"synchronous_commit {synchronous} (each event is its own commit)"
    )
    set_up_urls()
    full = list(settings.MIDDLEWARE)
    assert MIDDLEWARE_PATH in full, f"{MIDDLEWARE_PATH} is not in the demo's MIDDLEWARE"
    with_mw = handler(full)
    without_mw = handler([m for m in full if m != MIDDLEWARE_PATH])
    floor = handler([m if m != MIDDLEWARE_PATH else f"{__name__}.PassThrough" for m in full])
    print(f"MIDDLEWARE: {len(full)} entries, the last {full[-1]}; the baseline drops it")
    results = [
        no_error_path(with_mw, without_mw, floor, args),
        error_path(with_mw, without_mw, args),
        storm(args),
    ]
    print(f"\n{'all targets met' if all(results) else 'TARGET MISSED'}")
    return all(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per handler per round (500)")
    parser.add_argument("--rounds", type=int, default=120, help="interleaved rounds (120)")
    parser.add_argument("--errors", type=int, default=300, help="error requests counted (300)")
    parser.add_argument("--storm", type=int, default=10_000, help="violations in the storm (10,000)")
    parser.add_argument("--threads", type=int, default=8, help="threads of the storm (8)")
    args = parser.parse_args(argv)

    return in_throwaway_database("events_", lambda: benchmark(args), configure)


if __name__ == "__main__":
    sys.exit(main())
