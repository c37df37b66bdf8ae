"""``manage.py integrity events`` and ``integrity prune``: listing, filters, durations, exit status.

Most groups are stored through the ORM as ``events.write`` stores them, so
the test's rollback removes them; one test records a real IntegrityError
with ``events.record`` (which writes outside the caller's transaction, so
that test is transactional).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.utils import timezone

from demo.shop.models import Tag
from integrity.events import cli as events_cli
from integrity.events import explain
from integrity.models import Event, EventGroup

pytestmark = pytest.mark.django_db(databases="__all__")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOW = timezone.now()
HOUR = timedelta(hours=1)
FIELDS = {f.attname for f in EventGroup._meta.concrete_fields}


def run(*args: str) -> tuple[int, str, str]:
    """Run ``integrity <args>`` as a user would; (exit status, stdout, stderr with the error message)."""
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


def listed(*args: str) -> list[dict[str, Any]]:
    code, out, err = run("events", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def table(out: str) -> list[dict[str, str]]:
    """The rows of the text table (above the summary line), read by the widths of its dashes."""
    lines = out.splitlines()
    spans, col = [], 0
    for dashes in lines[1].split("  "):
        spans.append((col, col + len(dashes)))
        col += len(dashes) + 2
    headers = [lines[0][a:b].strip() for a, b in spans]
    rows = []
    for line in lines[2:-1]:
        rows.append({h: line[a:b].strip() for h, (a, b) in zip(headers, spans, strict=True)})
    return rows


def group(
    name: str,
    last_seen: datetime,
    *,
    kind: str = "unique",
    database: str = "default",
    count: int = 1,
    handled: int = 0,
    samples: list[datetime] | None = None,
) -> EventGroup:
    """A group as recording leaves it: on ``shop_tag`` (name), with its samples."""
    samples = [last_seen] if samples is None else samples
    made = EventGroup.objects.create(
        fingerprint=f"fp-{name}",
        database=database,
        kind=kind,
        sqlstate={"unique": "23505", "foreign key": "23503", "not null": "23502"}.get(kind, ""),
        constraint=name,
        table="shop_tag",
        columns=["name"],
        model="shop.Tag",
        fields=["name"],
        message=f'duplicate key value violates unique constraint "{name}"',
        count=count,
        handled_count=handled,
        sampled=len(samples),
        last_slot=len(samples),
        first_seen=min([last_seen, *samples]),
        last_seen=last_seen,
        views={"shop:tag": count},
        paths={"/tags/": count},
    )
    for when in samples:
        Event.objects.create(group=made, created_at=when, database=database, origin="request", path="/tags/")
    return made


@pytest.fixture
def seen() -> dict[str, EventGroup]:
    return {
        "recent": group("recent", NOW - HOUR, count=7, handled=2),
        "older": group("older", NOW - 5 * HOUR, kind="foreign key"),
        "other_db": group("other_db", NOW - 2 * HOUR, database="other"),
        "last_week": group("last_week", NOW - 3 * 24 * HOUR),
        "ancient": group("ancient", NOW - 90 * 24 * HOUR, kind="not null"),
    }


# --- events ---------------------------------------------------------------------------------


def test_text_lists_the_last_24_hours_newest_first_with_the_cause(seen: dict[str, EventGroup]) -> None:
    code, out, err = run("events")

    assert code == 0, err
    rows = table(out)
    assert out.splitlines()[0].split() == [
        "LAST",
        "SEEN",
        "COUNT",
        "HANDLED",
        "STATE",
        "KIND",
        "MODEL",
        "CONSTRAINT/TABLE",
        "DATABASE",
        "CAUSE",
    ]
    assert [r["CONSTRAINT/TABLE"] for r in rows] == ["recent", "other_db", "older"]
    first = rows[0]
    assert first["LAST SEEN"] == timezone.localtime(NOW - HOUR).strftime("%Y-%m-%d %H:%M:%S")
    assert [first[h] for h in ("COUNT", "HANDLED", "KIND", "MODEL")] == ["7", "2", "unique", "shop.Tag"]
    assert first["DATABASE"] == "default"
    assert first["CAUSE"] == str(explain.explain(seen["recent"]).cause)
    assert rows[1]["DATABASE"] == "other" and rows[2]["KIND"] == "foreign key"
    assert out.splitlines()[-1] == "3 groups seen in the last 24h, 9 errors."


def test_json_has_every_field_iso_datetimes_and_the_cause(seen: dict[str, EventGroup]) -> None:
    payload = listed()

    assert [g["constraint"] for g in payload] == ["recent", "other_db", "older"]
    first = payload[0]
    assert set(first) == FIELDS | {"cause", "cause_code"}
    recent = seen["recent"]
    assert datetime.fromisoformat(first["last_seen"]) == recent.last_seen
    assert datetime.fromisoformat(first["first_seen"]) == recent.first_seen
    assert first["id"] == recent.pk and first["fingerprint"] == "fp-recent"
    assert (first["count"], first["handled_count"], first["sampled"]) == (7, 2, 1)
    assert first["columns"] == ["name"] and first["fields"] == ["name"]
    assert first["views"] == {"shop:tag": 7} and first["paths"] == {"/tags/": 7}
    explanation = explain.explain(recent)
    assert (first["cause"], first["cause_code"]) == (str(explanation.cause), explanation.code)


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("30m", []),
        ("90m", ["recent"]),
        ("24h", ["recent", "other_db", "older"]),
        ("7d", ["recent", "other_db", "older", "last_week"]),
        ("2w", ["recent", "other_db", "older", "last_week"]),
        ("all", ["recent", "other_db", "older", "last_week", "ancient"]),
        (" 7D ", ["recent", "other_db", "older", "last_week"]),
        ("ALL", ["recent", "other_db", "older", "last_week", "ancient"]),
    ],
)
def test_since_takes_minutes_hours_days_weeks_or_all(
    seen: dict[str, EventGroup], since: str, expected: list[str]
) -> None:
    assert [g["constraint"] for g in listed("--since", since)] == expected


def test_the_footer_names_the_window(seen: dict[str, EventGroup]) -> None:
    assert run("events", "--since", "all")[1].splitlines()[-1] == "5 groups seen ever, 11 errors."
    assert run("events", "--since", "30m")[1].splitlines()[-1] == "0 groups seen in the last 30m, 0 errors."
    code, out, _ = run("events", "--since", "90m")
    assert code == 0 and out.splitlines()[-1] == "1 group seen in the last 90m, 7 errors."


def test_kind_and_database_filters(seen: dict[str, EventGroup]) -> None:
    assert [g["constraint"] for g in listed("--kind", "foreign key")] == ["older"]
    assert [g["constraint"] for g in listed("--kind", "foreign-key")] == ["older"]
    assert [g["constraint"] for g in listed("--kind", "NOT_NULL", "--since", "all")] == ["ancient"]
    assert [g["constraint"] for g in listed("--database", "other")] == ["other_db"]
    assert [g["constraint"] for g in listed("--database", "default", "--kind", "unique")] == ["recent"]
    assert listed("--database", "legacy") == []  # a known alias where nothing was raised


def test_no_events() -> None:
    code, out, _ = run("events")
    assert code == 0
    assert table(out) == []
    assert listed() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["events", "--since", "3y"], "Bad duration '3y': use a whole number and a unit"),
        (["events", "--since", ""], "Bad duration ''"),
        (["events", "--since=-1d"], "Bad duration '-1d'"),
        (["events", "--since", "1.5h"], "Bad duration '1.5h'"),
        (["events", "--kind", "duplicate"], "Unknown kind 'duplicate'; known: unique, foreign key,"),
        (["events", "--database", "nope"], "Unknown database alias nope; known: default, other, legacy."),
        (["prune"], "--older-than is required"),
        (["prune", "--older-than", "all"], "Bad duration 'all'"),
        (["prune", "--older-than", "30"], "Bad duration '30'"),
    ],
)
def test_bad_arguments_exit_2_and_change_nothing(
    seen: dict[str, EventGroup], args: list[str], message: str
) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert message in err
    assert out == ""
    assert EventGroup.objects.count() == 5 and Event.objects.count() == 5


def test_bad_arguments_exit_2_from_the_shell() -> None:
    """Refused before any data is read (a subprocess would use the real database)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    for args in (["events", "--since", "soon"], ["prune", "--older-than", "forever"]):
        result = subprocess.run(
            [sys.executable, "manage.py", "integrity", *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr
        assert "Bad duration" in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_parse_duration() -> None:
    assert events_cli.parse_duration("45m") == timedelta(minutes=45)
    assert events_cli.parse_duration("24h") == timedelta(hours=24)
    assert events_cli.parse_duration("30d") == timedelta(days=30)
    assert events_cli.parse_duration("2w") == timedelta(days=14)
    assert events_cli.parse_duration("all", allow_all=True) is None


# --- prune ----------------------------------------------------------------------------------


@pytest.fixture
def aged() -> dict[str, EventGroup]:
    day = 24 * HOUR
    return {
        "gone": group("gone", NOW - 40 * day, samples=[NOW - 45 * day, NOW - 40 * day], count=2),
        "mixed": group("mixed", NOW - day, samples=[NOW - 50 * day, NOW - day], count=9),
        "fresh": group("fresh", NOW - HOUR),
    }


def test_prune_removes_old_samples_and_empty_old_groups(aged: dict[str, EventGroup]) -> None:
    code, out, err = run("prune", "--older-than", "30d")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Removed 3 samples recorded before ")
    assert lines[0].endswith(" and 1 group left without samples and not seen since.")
    assert lines[1] == "1 remaining group got their samples counter set to the samples left."
    assert sorted(EventGroup.objects.values_list("constraint", flat=True)) == ["fresh", "mixed"]
    mixed = EventGroup.objects.get(constraint="mixed")
    assert (mixed.count, mixed.sampled) == (9, 1)
    assert [e.created_at for e in mixed.samples.all()] == [NOW - 24 * HOUR]


def test_prune_dry_run_and_json(aged: dict[str, EventGroup]) -> None:
    code, out, err = run("prune", "--older-than", "30d", "--dry-run")
    assert code == 0, err
    assert out.startswith("Would remove 3 samples recorded before ")
    assert "1 remaining group would get their samples counter set" in out
    assert EventGroup.objects.count() == 3 and Event.objects.count() == 5

    code, out, err = run("prune", "--older-than", "30d", "--dry-run", "--json")
    preview = json.loads(out)
    assert (preview["samples"], preview["groups"], preview["reset"], preview["dry_run"]) == (3, 1, 1, True)
    assert EventGroup.objects.count() == 3

    code, out, err = run("prune", "--older-than", "30d", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert (done["samples"], done["groups"], done["reset"], done["dry_run"]) == (3, 1, 1, False)
    cutoff = datetime.fromisoformat(done["cutoff"])
    assert abs(cutoff - (timezone.now() - timedelta(days=30))) < timedelta(minutes=1)
    assert EventGroup.objects.count() == 2 and Event.objects.count() == 2

    code, out, _ = run("prune", "--older-than", "30d")
    assert code == 0 and out.startswith("Removed 0 samples") and len(out.splitlines()) == 1


# --- a real error, recorded -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_recorded_integrity_error_is_listed() -> None:
    from integrity.events import recording as events

    Tag.objects.create(name="sale")
    with pytest.raises(IntegrityError) as caught:
        Tag.objects.create(name="sale")
    events.record(caught.value)

    [found] = listed()
    assert (found["kind"], found["model"], found["fields"]) == ("unique", "shop.Tag", ["name"])
    assert [found[k] for k in ("constraint", "table", "database")] == [
        "shop_tag_name_key",
        "shop_tag",
        "default",
    ]
    assert (found["count"], found["sampled"]) == (1, 1)
    code, out, _ = run("events", "--kind", "unique")
    assert code == 0 and [r["CONSTRAINT/TABLE"] for r in table(out)] == ["shop_tag_name_key"]
    assert table(out)[0]["CAUSE"] == found["cause"] != ""
