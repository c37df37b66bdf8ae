"""Hostile input is a clear 4xx (or exit status 2), never a 500 or a traceback, on every page and command.

The "no 500" sweep GETs and POSTs every URL the app's ModelAdmins route
(listed from their ``urls``, so a new page is swept too) with NUL bytes,
huge and odd numbers, malformed filters and very long strings, as a
superuser, and asserts the answer is not a server error.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client

from demo.crm.models import Company
from tests.helpers import integrity_command as run_command

pytestmark = pytest.mark.django_db(databases="__all__")

NAME_RULE = "default:crm.Company:unique:name"
HUGE = "99999999999999999999"  # more than a bigint holds
HOSTILE = [
    "\x00",
    "a\x00b",
    HUGE,
    "-" + HUGE,
    "-1",
    "0",
    "1e9999",
    "NaN",
    "²",
    "１２",
    "x" * 5000,
    "'\"<>%;--",
    "default:shop.Product:id\x00",
    " ",
]
PARAMS = [
    "rule",
    "pk",
    "id",
    "key",
    "page",
    "groups-page",
    "samples-page",
    "q",
    "status",
    "app",
    "database",
    "capacity",
    "kind",
    "model",
    "handled",
    "range",
    "verify",
    "o",
    "p",
    "e",
    "enforcement",
    "survivor",
    "remove",
    "step",
    "token",
    "policy",
    "confirm",
    "next",
    "sort",
    "created_at__gte",
    "lowered__exact",
]


@pytest.fixture
def superuser() -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("boss", password="x"))
    return client


def app_urls() -> list[str]:
    """Every route of the app's ModelAdmins on the default site, converters left in, plus the dashboard."""
    found = ["/admin/integrity/"]
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "integrity":
            continue
        base = f"/admin/integrity/{model._meta.model_name}/"
        found += [base + str(p.pattern) for p in model_admin.urls if hasattr(p, "pattern")]
    return found


def concrete(url: str, value: str) -> str:
    return re.sub(r"<(?:\w+:)?\w+>", quote(value, safe=""), url.replace("^", "").replace("$", ""))


def test_the_sweep_covers_every_page():
    urls = app_urls()
    for page in (
        "sequence/",
        "sequence/resync/",
        "duplicaterule/group/",
        "duplicaterule/merge/",
        "eventgroup/group/",
        "mergerecord/<str:object_id>/undo/",
        "sequenceresync/",
    ):
        assert f"/admin/integrity/{page}" in urls


@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v)[:20] for v in HOSTILE])
def test_no_page_answers_500_to_hostile_input(superuser, value):
    failures = []
    for url in app_urls():
        path = concrete(url, value)
        for data in (
            {name: value for name in PARAMS},
            {**{name: value for name in PARAMS}, "rule": NAME_RULE},
        ):
            for method in ("get", "post"):
                response = getattr(superuser, method)(path, data)
                if response.status_code >= 500:
                    failures.append((method, path[:80], data["rule"][:20], response.status_code))
    assert failures == []


# ---------------------------------------------------------------------------
# Each small one, through the real view or command
# ---------------------------------------------------------------------------


def test_a_nul_byte_in_a_string_pk_or_a_filter_is_a_400_that_says_so(superuser):
    for url in (
        f"/admin/integrity/duplicaterule/group/?rule={NAME_RULE}&pk=1%00",
        "/admin/integrity/mergerecord/?q=%00",
        "/admin/integrity/sequenceresync/?q=a%00b",
        "/admin/integrity/eventgroup/?model=a%00b",
    ):
        response = superuser.get(url)
        assert response.status_code == 400, url
        assert "NUL" in response.content.decode()


def test_a_pk_too_large_for_its_column_is_a_400_naming_it(superuser):
    response = superuser.get(f"/admin/integrity/duplicaterule/group/?rule={NAME_RULE}&pk={HUGE}")
    assert response.status_code == 400
    assert f"{HUGE!r} is not a valid primary key of crm.Company" in html.unescape(response.content.decode())
    response = superuser.post(
        "/admin/integrity/duplicaterule/merge/",
        {"rule": NAME_RULE, "survivor": HUGE, "remove": "1", "step": "preview"},
    )
    assert response.status_code == 400


def command(*args: str) -> tuple[int, str]:
    """(exit status, what the user reads) of ``manage.py integrity …``."""
    code, out, err = run_command(*args)
    return code, (out + err).strip()


def test_merge_with_a_pk_too_large_exits_2():
    made = [Company.objects.create(name=f"Acme {i}", vat_number="V1") for i in range(2)]
    code, message = command(
        "merge", "crm.Company", "--rule", "unique:vat_number", "--keep", HUGE, "--remove", str(made[1].pk)
    )
    assert (code, message) == (2, f"{HUGE!r} is not a valid primary key of crm.Company.")


def test_merge_on_a_sqlite_database_exits_2_with_the_reason():
    code, message = command("merge", "crm.Company", "--keep", "1", "--remove", "2", "--database", "legacy")
    assert code == 2
    assert "not available for sqlite" in message


def test_undo_of_a_record_id_in_other_digits_exits_2():
    assert command("undo", "²")[0] == 2


@pytest.mark.parametrize(
    "args",
    [
        ("events", "--since", "99999999999d"),
        ("prune", "--older-than", "99999999999d"),
        ("events", "--since", "5000000w"),
    ],
)
def test_a_duration_too_long_exits_2_with_a_message(args):
    code, message = command(*args)
    assert code == 2
    assert "too long" in message
