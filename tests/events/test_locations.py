"""Where in the code: each sample keeps the innermost frames of the project's own code, the group counts them.

Requests are real (Django's test client through the whole handler stack and
the middleware, or ``call_command``); this module is also the URLconf of its
views, so the frames recorded are lines of this file, found by the marker
comments on them. The database is the embedded PostgreSQL.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connections
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path

import integrity
from demo.violations.models import Member
from integrity.events import locations
from integrity.models import Event, EventGroup
from tests.helpers import client_for, rows_of, text
from tests.urls import urlpatterns as site_urlpatterns

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.urls(__name__),
]

TAKEN = "taken@example.com"
HERE = str(Path(__file__).relative_to(Path(__file__).resolve().parents[2]))  # tests/events/test_locations.py
GROUP = "/admin/integrity/eventgroup/group/"


def line_of(marker: str) -> int:
    """The line of this file that carries ``# <marker>``."""
    lines = Path(__file__).read_text().splitlines()
    found = [n for n, line in enumerate(lines, 1) if line.rstrip().endswith(f"# {marker}")]
    assert len(found) == 1, marker
    return found[0]


# ---------------------------------------------------------------------------
# The views (this module is their URLconf)
# ---------------------------------------------------------------------------


def _insert_taken() -> None:
    Member.objects.create(email=TAKEN, nickname="again")  # innermost


def sign_up(request: HttpRequest) -> HttpResponse:
    _insert_taken()  # caller
    return HttpResponse("signed up")


def other_place(request: HttpRequest) -> HttpResponse:
    Member.objects.create(email=TAKEN)  # other place
    return HttpResponse("signed up")


def _level(n: int) -> None:
    if n == 0:
        Member.objects.create(email=TAKEN)  # deepest
    _level(n - 1)  # recursion


def deep(request: HttpRequest) -> HttpResponse:
    _level(8)
    return HttpResponse("signed up")


def long_line(request: HttpRequest) -> HttpResponse:
    Member.objects.create(email=TAKEN, nickname="long")  # noqa: E501  a comment that makes this line of source longer than the two hundred characters a location keeps of it, so that it must be cut, saying so
    return HttpResponse("signed up")


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    *site_urlpatterns,  # the admin, for the group's page
    path("sign-up/", sign_up),
    path("other/", other_place),
    path("deep/", deep),
    path("long/", long_line),
    path("ok/", ok),
]


@pytest.fixture(autouse=True)
def taken() -> None:
    Member.objects.create(email=TAKEN, nickname="first")


def fail(path: str, times: int = 1) -> None:
    client = Client(raise_request_exception=False)
    for _ in range(times):
        assert client.post(path).status_code == 500


def sample_frames() -> list[dict[str, Any]]:
    event = Event.objects.get()
    return list(event.locations)


# ---------------------------------------------------------------------------
# What a sample keeps
# ---------------------------------------------------------------------------


def test_the_innermost_project_frame_is_the_line_that_ran_the_failing_query() -> None:
    fail("/sign-up/")
    frames = sample_frames()
    assert frames[:2] == [
        {
            "file": HERE,
            "line": line_of("innermost"),
            "function": "_insert_taken",
            "code": 'Member.objects.create(email=TAKEN, nickname="again")  # innermost',
        },
        {"file": HERE, "line": line_of("caller"), "function": "sign_up", "code": "_insert_taken()  # caller"},
    ]
    group = EventGroup.objects.get()
    assert group.constraint == "violations_member_email_key"
    assert group.locations == {f"{HERE}:{line_of('innermost')}": {**frames[0], "count": 1}}


def test_frames_of_django_of_installed_packages_and_of_this_app_are_skipped() -> None:
    """The traceback runs through Django, psycopg (site-packages) and this app's query wrapper: none is kept."""
    try:
        _insert_taken()
    except IntegrityError as exc:
        error = exc
    chain = []
    tb = error.__traceback__
    while tb is not None:
        chain.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    django_dir = os.path.dirname(sys.modules["django"].__file__ or "")
    integrity_dir = os.path.dirname(integrity.__file__ or "")
    assert any(f.startswith(django_dir + os.sep) for f in chain)
    assert any(f.startswith(integrity_dir + os.sep) for f in chain)  # recording.watch_queries
    assert any("site-packages" in Path(f).parts for f in chain)  # psycopg
    kept = locations.frames(error, limit=50)
    assert [(f["file"], f["function"]) for f in kept] == [
        (HERE, "_insert_taken"),
        (HERE, "test_frames_of_django_of_installed_packages_and_of_this_app_are_skipped"),
    ]


def test_a_sample_keeps_at_most_event_frames_frames_innermost_first() -> None:
    fail("/deep/")
    frames = sample_frames()
    assert len(frames) == 5  # the default INTEGRITY_EVENT_FRAMES
    assert frames[0]["line"] == line_of("deepest")
    assert [f["line"] for f in frames[1:]] == [line_of("recursion")] * 4
    Event.objects.all().delete()
    EventGroup.objects.all().delete()
    with override_settings(INTEGRITY_EVENT_FRAMES=2):
        fail("/deep/")
    assert [f["line"] for f in sample_frames()] == [line_of("deepest"), line_of("recursion")]


def test_event_frames_zero_keeps_no_location() -> None:
    with override_settings(INTEGRITY_EVENT_FRAMES=0):
        fail("/sign-up/")
    assert sample_frames() == []
    assert EventGroup.objects.get().locations == {}
    assert EventGroup.objects.get().count == 1


def test_a_long_source_line_is_cut_saying_so() -> None:
    fail("/long/")
    code = sample_frames()[0]["code"]
    assert len(code) == locations.CODE_CHARS
    assert code.startswith(
        'Member.objects.create(email=TAKEN, nickname="long")  # noqa: E501  a comment'
    ) and code.endswith("…")


# ---------------------------------------------------------------------------
# Cost: nothing on the path that raises nothing; no extra statement on the error path
# ---------------------------------------------------------------------------


def test_a_request_that_raises_nothing_runs_no_query() -> None:
    client = Client()
    with CaptureQueriesContext(connections["default"]) as captured:
        assert client.get("/ok/").content == b"ok"
    assert len(captured.captured_queries) == 0


def test_recording_a_location_adds_no_statement_on_the_event_tables() -> None:
    with CaptureQueriesContext(connections["default"]) as captured:
        fail("/sign-up/")
        fail("/other/")
    events = [q["sql"] for q in captured.captured_queries if "integrity_event" in q["sql"]]
    # Per error: the group's upsert (within its counters' WITH) and its sample, as without locations.
    assert len([q for q in events if q.startswith(("INSERT INTO", "WITH grp AS (INSERT INTO"))]) == 4
    assert EventGroup.objects.get().count == 2


# ---------------------------------------------------------------------------
# The group's top locations: its page and the command
# ---------------------------------------------------------------------------


def test_the_group_page_shows_the_top_locations_with_their_counts_and_callers() -> None:
    fail("/sign-up/", 3)
    fail("/other/")
    group = EventGroup.objects.get()
    response = client_for("superuser").get(f"{GROUP}?id={group.pk}")
    assert response.status_code == 200
    assert "Where in the code" in text(response)
    rows = rows_of(response.content, "data-location")
    shown = [[" ".join(c.split()) for c in r.cells] for r in rows]
    assert [r.attrs["data-location"] for r in rows] == [
        f"{HERE}:{line_of('innermost')}",
        f"{HERE}:{line_of('other place')}",
    ]
    assert shown[0][:3] == ["3", f"{HERE}:{line_of('innermost')}", "_insert_taken"]
    assert shown[0][3].startswith('Member.objects.create(email=TAKEN, nickname="again") # innermost')
    assert f"called from {HERE}:{line_of('caller')} sign_up: _insert_taken() # caller" in shown[0][3]
    assert shown[1][:3] == ["1", f"{HERE}:{line_of('other place')}", "other_place"]


def test_a_group_without_project_frames_says_so() -> None:
    with override_settings(INTEGRITY_EVENT_FRAMES=0):
        fail("/sign-up/")
    group = EventGroup.objects.get()
    response = client_for("superuser").get(f"{GROUP}?id={group.pk}")
    assert "No frame of the project's own code" in text(response)
    assert rows_of(response.content, "data-location") == []


def run(*args: str) -> tuple[int, str, str]:
    """``integrity <args>`` as a user runs it: (exit status, stdout, stderr with the error message)."""
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    try:
        call_command("integrity", *args, stdout=out, stderr=err)
    except CommandError as exc:
        code = exc.returncode  # what run_from_argv exits with
        err.write(str(exc))
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_the_command_shows_one_groups_top_locations() -> None:
    fail("/sign-up/", 2)
    fail("/other/")
    group = EventGroup.objects.get()
    code, out, _err = run("events", "--group", str(group.pk))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(
        "unique violation: violations_member_email_key (violations.Member) on default, 3 errors"
    )
    assert lines[2].startswith("Where in the code")
    assert lines[3].split() == ["COUNT", "WHERE", "FUNCTION", "SOURCE", "LINE"]
    assert lines[5].split()[:3] == ["2", f"{HERE}:{line_of('innermost')}", "_insert_taken"]
    assert lines[6].split()[:3] == ["1", f"{HERE}:{line_of('other place')}", "other_place"]
    code, out, _err = run("events", "--group", str(group.pk), "--json")
    assert code == 0
    top = json.loads(out)["top_locations"]
    assert [(t["file"], t["line"], t["function"], t["count"]) for t in top] == [
        (HERE, line_of("innermost"), "_insert_taken", 2),
        (HERE, line_of("other place"), "other_place", 1),
    ]


@pytest.mark.parametrize("bad", ["x", "-1", "1" * 19])
def test_the_command_refuses_a_bad_group_id_with_exit_2(bad: str) -> None:
    fail("/sign-up/")
    code, out, err = run("events", "--group", bad)
    assert code == 2 and out == "" and "Bad group id" in err


def test_the_command_refuses_a_group_that_does_not_exist_with_exit_2() -> None:
    code, out, err = run("events", "--group", "424242")
    assert code == 2 and out == "" and "There is no event group 424242" in err


def test_an_event_frames_value_that_is_not_a_whole_number_is_the_system_check_e004() -> None:
    from integrity.checks import check_settings

    with override_settings(INTEGRITY_EVENT_FRAMES="five"):
        errors = check_settings()
    assert [e.id for e in errors] == ["integrity.E004"]
    assert errors[0].msg == "INTEGRITY_EVENT_FRAMES must be a whole number, not 'five'."
