"""``integrity.field_errors``: a unique violation as the form errors Django's own validation gives.

Each case makes the database refuse a real row, then compares the answer with
what ``full_clean()`` says of the same row before the insert: the same keys,
the same messages (the model's declared ones).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

import integrity
from demo.violations.models import Invoice, Member
from tests.formerrors.models import Signup

pytestmark = pytest.mark.django_db(transaction=True)

BASE = {
    "username": "ann",
    "slug": "ann",
    "code": "A1",
    "email": "ann@example.com",
    "team": "red",
    "nickname": "a",
}


def signup(**changes: Any) -> Signup:
    return Signup(**{**BASE, **changes})


def refused(row: Signup) -> IntegrityError:
    try:
        with transaction.atomic():
            row.save(force_insert=True)  # an INSERT, also for a row given an existing id
    except IntegrityError as exc:
        return exc
    raise AssertionError("the database took the row")


def django_says(row: Signup) -> dict[str, list[str]]:
    """What Model.full_clean() reports for ``row`` (the messages a ModelForm would show)."""
    try:
        row.full_clean()
    except Exception as exc:  # noqa: BLE001 - the ValidationError's message_dict is the point
        return dict(getattr(exc, "message_dict", {}))
    return {}


@pytest.fixture
def first() -> Signup:
    return Signup.objects.create(**BASE)


CASES = {
    "unique=True with error_messages": (
        {"slug": "b", "code": "B", "email": "b@example.com", "nickname": "b"},
        {"username": ["That username is taken."]},
    ),
    "UniqueConstraint on fields, default message": (
        {"username": "bob", "code": "B", "email": "b@example.com", "nickname": "b"},
        {"slug": ["Signup with this Slug already exists."]},
    ),
    "UniqueConstraint with its message and code 'unique'": (
        {"username": "bob", "slug": "bob", "email": "b@example.com", "nickname": "b"},
        {"code": ["That code is in use."]},
    ),
    "UniqueConstraint on an expression": (
        {"username": "bob", "slug": "bob", "code": "B", "email": "ANN@example.com", "nickname": "b"},
        {"__all__": ["That e-mail is registered."]},
    ),
    "unique_together": (
        {"username": "bob", "slug": "bob", "code": "B", "email": "b@example.com"},
        {"__all__": ["Signup with this Team and Nickname already exists."]},
    ),
}


@pytest.mark.parametrize("changes,expected", CASES.values(), ids=CASES.keys())
def test_each_rule_gives_the_message_full_clean_gives(
    first: Signup, changes: dict[str, Any], expected: Any
) -> None:
    row = signup(**changes)
    assert django_says(row) == expected  # the model's own validation, before the insert
    assert integrity.field_errors(refused(row)) == expected  # the same, from the database's refusal
    assert Signup.objects.count() == 1


def test_a_conditional_constraint_gives_its_violation_message(first: Signup) -> None:
    Signup.objects.filter(pk=first.pk).update(invite="XY")
    row = signup(username="bob", slug="bob", code="B", email="b@example.com", nickname="b", invite="XY")
    expected = {"__all__": ["Constraint “formerrors_invite_used” is violated."]}
    assert django_says(row) == expected
    assert integrity.field_errors(refused(row)) == expected


def test_the_primary_key(first: Signup) -> None:
    row = signup(id=first.pk, username="bob", slug="bob", code="B", email="b@example.com", nickname="b")
    assert integrity.field_errors(refused(row)) == {"id": ["Signup with this ID already exists."]}


def test_non_field_key_for_django_rest_framework(first: Signup) -> None:
    row = signup(username="bob", slug="bob", code="B", email="b@example.com")
    errors = integrity.field_errors(refused(row), non_field_key="non_field_errors")
    assert errors == {"non_field_errors": ["Signup with this Team and Nickname already exists."]}


def test_other_errors_give_nothing(first: Signup) -> None:
    with pytest.raises(IntegrityError) as fk:
        with transaction.atomic():
            Invoice.objects.create(member_id=2_000_000_000, total=1)
    with pytest.raises(IntegrityError) as not_null:
        with transaction.atomic():
            Member.objects.create(email="x@example.com", nickname=None)  # type: ignore[misc]
    assert integrity.field_errors(fk.value) == {}
    assert integrity.field_errors(not_null.value) == {}
    assert integrity.field_errors(ValueError("not a database error")) == {}
    assert integrity.field_errors(IntegrityError("no driver error behind it")) == {}


def test_inside_the_failed_transaction_it_runs_no_query(first: Signup) -> None:
    with transaction.atomic():
        try:
            with transaction.atomic():
                signup(slug="b", code="B", email="b@example.com", nickname="b").save()
        except IntegrityError as exc:
            error = exc
        with CaptureQueriesContext(connection) as queries:
            errors = integrity.field_errors(error)
    assert errors == {"username": ["That username is taken."]}
    assert len(queries) == 0


def test_a_view_answers_the_race_with_a_400_and_the_field_error(first: Signup) -> None:
    # "Ann" passes the form's validate_unique() (usernames differ), but its slug, set by the view, is taken.
    data = {"username": "Ann", "code": "B", "email": "b@example.com", "team": "red", "nickname": "b"}
    response = Client().post("/formerrors/signup/", data)
    assert response.status_code == 400
    assert "Signup with this Slug already exists." in response.content.decode()
    assert Signup.objects.count() == 1
    response = Client().post("/formerrors/signup/", {**data, "username": "Bea", "nickname": "c", "code": "C"})
    assert response.status_code == 201
    assert Signup.objects.count() == 2
