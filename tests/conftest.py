"""Shared fixtures and helpers of the tests.

The merge tests': the configured rule on ``merging.Person``, people with
references, table dumps. The explain tests': real IntegrityErrors, parsed and
stored as the event group (and samples) ``events.write`` would store, through
the ORM so that the test's rollback removes them; sequence values are not
transactional, so ``keep_sequences`` puts back those the tests move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from integrity.duplicates.rules import Rule, get_rule
from integrity.events import recording as events
from integrity.events import violations
from integrity.merge import plan as merge_plan
from integrity.models import Event, EventGroup
from tests.merging.models import (
    Badge,
    Club,
    ClubMembership,
    Group,
    Invoice,
    Newsletter,
    Note,
    Order,
    Passport,
    Person,
    Profile,
    Receipt,
    Seat,
    Tagged,
)

RULES = [
    {"model": "merging.Person", "fields": ["email"], "name": "email"},
    {"model": "merging.Person", "fields": ["nickname"], "name": "nickname"},
]


@pytest.fixture
def constraints_checked() -> Iterator[None]:
    """Foreign keys are DEFERRABLE: check them before the test's transaction is rolled back, as a commit would."""
    yield
    if connection.in_atomic_block and not connection.needs_rollback:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.fixture
def rules_configured(db: None) -> Iterator[None]:
    with override_settings(INTEGRITY_DUPLICATE_RULES=RULES):
        yield


@pytest.fixture
def rule(rules_configured: None) -> Rule:
    return get_rule("default:merging.Person:configured:email")


@pytest.fixture
def nickname_rule(rules_configured: None) -> Rule:
    return get_rule("default:merging.Person:configured:nickname")


def merging_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name LIKE 'merging\\_%%' ORDER BY 1"
        )
        return [r[0] for r in cursor.fetchall()]


def dump(tables: list[str] | None = None) -> dict[str, list[Any]]:
    """Every row of every ``merging_*`` table (or of ``tables``), as ``row_to_json``, by id."""
    out = {}
    with connection.cursor() as cursor:
        for table in tables or merging_tables():
            qt = connection.ops.quote_name(table)
            cursor.execute(f"SELECT row_to_json(t)::text FROM {qt} t ORDER BY id")  # noqa: S608
            out[table] = [r[0] for r in cursor.fetchall()]
    return out


def person(email: str = "dup@example.com", **kw: Any) -> Person:
    return Person.objects.create(email=email, **kw)


def moves_by_label(plan: merge_plan.Plan) -> dict[str, merge_plan.Move]:
    """By ``app.Holder.field`` (an auto-created many-to-many table is its own holder)."""
    return {f"{m.relation.holder._meta.label}.{m.relation.field.name}": m for m in plan.moves}


def populate(a: Person, b: Person) -> None:
    """References of every kind to ``b`` (and a few to ``a``), with conflicts."""
    club, group, news = (
        Club.objects.create(name="c"),
        Group.objects.create(name="g"),
        Newsletter.objects.create(),
    )
    for p in (a, b):
        Order.objects.create(person=p)
        Seat.objects.create(person=p, number=1, row=str(p.pk))
        p.groups.add(group)
        news.readers.add(p)
        ClubMembership.objects.create(person=p, club=club, role=f"r{p.pk}")
        Tagged.objects.create(target=p, tag="same")
        Tagged.objects.create(target=p, tag=f"t{p.pk}")
        Note.objects.create(target=p, text=str(p.pk))
        Badge.objects.create(person=p, code=str(p.pk))
        Receipt.objects.create(person=p, number=str(p.pk))
    Badge.objects.create(code="nobody")
    Invoice.objects.create(person=b)
    Profile.objects.create(person=b, bio="b")
    person("mentee@example.com", mentor=b)
    b.passport = Passport.objects.create(number="PB")
    b.save()


def choices(rule: Rule, a: Person, b: Person) -> dict[str, Any]:
    """Resolve every conflict with the duplicate's row."""
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    return {c.id: next(r.pk for r in c.rows if r.owner == b.pk) for c in plan.unresolved}


# Explain: real errors stored as event groups ---------------------------------------------------


SEQUENCES = ["shop_product_id_seq", "clinic_doctor_id_seq", "ticket_sequence"]


@pytest.fixture
def keep_sequences() -> Iterator[None]:
    """Put the sequences the tests move back as they were (a separate connection: they are not rolled back)."""
    wrapper = connections["default"]
    conn = wrapper.get_new_connection(wrapper.get_connection_params())
    conn.autocommit = True
    saved = [
        (name, *conn.execute(f"SELECT last_value, is_called FROM {name}").fetchone()) for name in SEQUENCES
    ]
    yield
    try:
        for name, last, called in saved:
            conn.execute("SELECT setval(%s::regclass, %s, %s)", [name, last, called])
    finally:
        conn.close()


def run(sql: str, params: Any = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def set_next(sequence: str, value: int) -> None:
    run("SELECT setval(%s::regclass, %s, false)", [sequence, value])


def violation_of(write: Callable[[], Any]) -> violations.Violation:
    """The parsed IntegrityError that ``write`` raises (its savepoint rolled back)."""
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        run("SET CONSTRAINTS ALL IMMEDIATE")  # foreign keys fail at the statement, not at COMMIT
        write()
    return violations.parse(caught.value, "default")


def group_of(
    v: violations.Violation, samples: list[datetime] | None = None, handled: int = 0, fingerprint: str = ""
) -> EventGroup:
    """The group (and samples) ``events.write`` would have stored for ``v``."""
    samples = samples if samples is not None else [timezone.now()]
    group = EventGroup.objects.create(
        fingerprint=fingerprint or events.fingerprint("default", v),
        database="default",
        kind=v.kind,
        sqlstate=v.sqlstate or "",
        constraint=v.constraint or "",
        table=events._table_name(v),
        columns=list(v.columns),
        model=v.model or "",
        fields=list(v.fields),
        primary_key=v.primary_key,
        message=v.message,
        count=max(len(samples), 1) + handled,
        handled_count=handled,
        sampled=len(samples),
        first_seen=min(samples, default=timezone.now()),
        last_seen=max(samples, default=timezone.now()),
    )
    for when in samples:
        Event.objects.create(group=group, created_at=when, database="default", origin="request", path="/")
    return group
