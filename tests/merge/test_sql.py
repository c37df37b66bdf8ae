"""The merge preview and the undo confirmation show the SQL they run: the very statements, values inlined.

On the demo's data (three spellings of one company: references of every kind,
a conflict to resolve, link rows that collapse): the statements the page shows
are found, in the same order, among those the confirmed POST executes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from demo import seed, seed_crm
from integrity import duplicates
from integrity.models import MergeRecord
from tests.helpers import VAT_KEY, make_user
from tests.merging.models import Order, Person
from tests.pages import ADMIN, form_of

pytestmark = pytest.mark.django_db(databases="__all__")

GROUP = f"{ADMIN}duplicaterule/group/"


@pytest.fixture
def client() -> Iterator[Client]:
    seed.load()
    client = Client()
    client.force_login(make_user("superuser", username="merger"))
    yield client
    seed_crm.undo_failed_concurrent_index()


def shown_statements(response: Any, block_id: str) -> list[str]:
    """The statements of the page's SQL block ``block_id`` (integrity/sql.html), as a person copies them."""
    match = re.search(rf'<pre id="{block_id}"[^>]*><code>(.*?)</code></pre>', response.content.decode(), re.S)
    assert match, f"no SQL block #{block_id} on the page"
    return [s.strip() for s in html.unescape(match.group(1)).split(";\n") if s.strip()]


def run_in_order(shown: list[str], captured: CaptureQueriesContext) -> list[str]:
    """The shown statements the POST did not run, in the page's order (empty: all of them were run)."""
    executed = iter(q["sql"] for q in captured.captured_queries)
    return [statement for statement in shown if statement not in executed]


def preview_of_the_first_group(client: Client) -> Any:
    vat = duplicates.get_rule(VAT_KEY)
    pk = duplicates.scan(vat).groups[0].pks[0]
    action, data = form_of(client.get(GROUP, {"rule": VAT_KEY, "pk": pk}).content, "merge-form")
    preview = client.post(action, data)
    assert preview.status_code == 200
    assert 'id="merge-sql"' not in preview.content.decode()  # a conflict's row to choose first
    # The billing profiles' conflict: keep the first row offered, and preview again.
    action, data = form_of(preview.content, "merge-confirm")
    again = client.post(action, {**data, "step": "preview"})
    assert again.status_code == 200
    return again


def test_the_merge_preview_shows_the_statements_the_merge_runs(client: Client) -> None:
    preview = preview_of_the_first_group(client)
    shown = shown_statements(preview, "merge-sql")
    confirm = form_of(preview.content, "merge-confirm")

    with CaptureQueriesContext(connection) as captured:
        assert client.post(*confirm).status_code == 302

    assert (shown[0], shown[-1]) == ("BEGIN", "COMMIT")
    assert run_in_order(shown[1:-1], captured) == []
    kinds = [s.split(" ", 1)[0] for s in shown[1:-1]]
    assert kinds[0] == "SELECT" and shown[1].endswith("FOR UPDATE")  # the members' rows locked first
    assert "LOCK" in kinds  # the generic notes' table (no constraint protects it)
    assert kinds.count("UPDATE") >= 5  # one per relation re-pointed
    record = MergeRecord.objects.get()
    deletes = [s for s in shown if s.startswith('DELETE FROM "crm_company"')]
    assert len(deletes) == 1 and f"ANY('{{{','.join(record.removed)}}}'" in deletes[0]  # the merged rows


def test_the_undo_confirmation_shows_the_statements_the_undo_runs(client: Client) -> None:
    preview = preview_of_the_first_group(client)
    assert client.post(*form_of(preview.content, "merge-confirm")).status_code == 302
    record = MergeRecord.objects.get()
    undo = f"{ADMIN}mergerecord/{record.pk}/undo/"

    page = client.post(undo)
    shown = shown_statements(page, "undo-sql")
    with CaptureQueriesContext(connection) as captured:
        assert client.post(undo, {"confirm": "1"}).status_code == 302

    assert (shown[0], shown[-1]) == ("BEGIN", "COMMIT")
    assert run_in_order(shown[1:-1], captured) == []
    assert any(s.startswith('INSERT INTO "crm_company"') for s in shown)
    assert sum(s.startswith("UPDATE") for s in shown) >= 5  # each moved reference pointed back
    record.refresh_from_db()
    assert record.undone_at is not None


def test_merge_every_group_shows_the_first_groups_statements_as_it_runs_them(rules_configured: None) -> None:
    ann, ann2 = Person.objects.create(email="a@x"), Person.objects.create(email="a@x")
    Order.objects.create(person=ann2, total=1)
    Person.objects.create(email="b@x"), Person.objects.create(email="b@x")
    client = Client()
    client.force_login(make_user("superuser", username="bulk"))
    data = {"rule": "default:merging.Person:configured:email", "policy": "oldest"}

    page = client.post(f"{ADMIN}duplicaterule/merge-all/", {**data, "step": "preview"})
    shown = shown_statements(page, "merge-all-sql")
    with CaptureQueriesContext(connection) as captured:
        assert client.post(f"{ADMIN}duplicaterule/merge-all/", {**data, "step": "run"}).status_code == 200

    assert MergeRecord.objects.count() == 2
    assert list(Order.objects.values_list("person", flat=True)) == [ann.pk]
    assert (shown[0], shown[-1]) == ("BEGIN", "COMMIT")
    assert run_in_order(shown[1:-1], captured) == []
    assert f"ANY('{{{ann2.pk}}}'" in shown[-2]  # the first group: ann2 merged into ann (the oldest)
