"""Issue 14, section 2: a lifecycle for groups (resolve, ignore, regress) and the fix verified.

Through the admin pages (the group page's buttons, the list's bulk actions),
the recording's upsert (``events.write``: a resolved group occurring again
regresses), the command (``--state``) and the sequences page's resync (the
``fix_applied`` signal recorded on the group it answers).
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from demo.shop.models import Product
from integrity.dashboard import cards
from integrity.events import recording as events
from integrity.models import EventActivity, EventGroup
from tests.helpers import (
    REQUEST,
    client_for,
    group_of,
    make_user,
    set_sequence_next,
    text,
    violation,
    violation_of,
)

pytestmark = [
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.usefixtures("restore_sequences"),
]

EVENTS = "/admin/integrity/eventgroup/"
GROUP = f"{EVENTS}group/"
STATE = f"{EVENTS}state/"
RESOLVER = ["view_eventgroup", "resolve_eventgroup"]


def occur(constraint: str = "shop_product_pkey") -> int:
    group_id = events.write(violation(constraint), "default", REQUEST)
    assert group_id is not None
    return group_id


def resolver(name: str = "ann") -> Client:
    client = Client()
    client.force_login(make_user("staff", RESOLVER, username=name))
    return client


def test_resolve_from_the_group_page_then_an_occurrence_regresses_it() -> None:
    group_id = occur()
    client = resolver()

    response = client.post(STATE, {"ids": group_id, "action": "resolve", "next": f"{GROUP}?id={group_id}"})
    assert response.status_code == 302 and response["Location"] == f"{GROUP}?id={group_id}"
    group = EventGroup.objects.get(pk=group_id)
    assert group.state == "resolved" and group.resolved_by is not None
    assert group.resolved_by.username == "ann" and group.resolved_at is not None
    page = text(client.get(GROUP, {"id": group_id}))
    assert "1 group resolved." in page and "Resolved by ann at" in page

    occur()  # it happens again

    group = EventGroup.objects.get(pk=group_id)
    assert group.state == "regressed" and group.regressed_at is not None and group.count == 2
    assert list(EventActivity.objects.filter(group=group).values_list("action", flat=True)) == [
        "resolved",
        "regressed",
    ]
    page = text(client.get(GROUP, {"id": group_id}))
    assert "State: Regressed" in page and "it occurred again after it was resolved" in page
    assert "Regressed: occurred again after it was resolved (occurrence 2)" in page  # the timeline


def test_resolving_needs_its_own_permission() -> None:
    group_id = occur()
    viewer = client_for("staff", ["view_eventgroup"])

    assert viewer.post(STATE, {"ids": group_id, "action": "resolve"}).status_code == 403
    assert EventGroup.objects.get(pk=group_id).state == "unresolved"
    page = viewer.get(GROUP, {"id": group_id})
    assert 'id="event-resolve"' not in page.content.decode()
    assert "needs the permission integrity.resolve_eventgroup" in text(page)
    assert 'name="ids"' not in viewer.get(EVENTS).content.decode()  # no checkboxes either
    assert resolver().get(STATE).status_code == 405


def test_bulk_resolve_from_the_list_and_the_state_filter() -> None:
    first, second, third = occur("a_key"), occur("b_key"), occur("c_key")
    client = resolver()

    response = client.post(STATE, {"ids": [first, second], "action": "resolve", "next": EVENTS})
    assert response.status_code == 302
    assert set(EventGroup.objects.filter(state="resolved").values_list("pk", flat=True)) == {first, second}

    shown = client.get(EVENTS).content.decode()
    assert f'data-group="{third}"' in shown and f'data-group="{first}"' not in shown  # default: open ones
    resolved = client.get(EVENTS, {"state": "resolved"}).content.decode()
    assert f'data-group="{first}"' in resolved and f'data-group="{third}"' not in resolved
    assert f'name="ids" value="{third}"' in shown
    everything = client.get(EVENTS, {"state": "all"}).content.decode()
    assert all(f'data-group="{pk}"' in everything for pk in (first, second, third))
    bad = client.get(EVENTS, {"state": "fixed"})
    assert bad.status_code == 400 and "state must be one of" in text(bad)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "resolve"}, "Choose at least one group."),
        ({"action": "resolve", "ids": "x1"}, "x1 is not a valid event group id."),
        ({"action": "explode", "ids": "1"}, "Select a valid choice"),
        ({"action": "ignore", "ids": "1"}, "give a date or a number of occurrences, one of the two"),
        ({"action": "ignore", "ids": "1", "until": "2001-01-01"}, "has passed already"),
        ({"action": "ignore", "ids": "1", "more": "0"}, "greater than or equal to 1"),
    ],
)
def test_a_bad_state_change_is_a_400_that_says_why(data: dict[str, str], message: str) -> None:
    occur()
    response = resolver().post(STATE, data)
    assert response.status_code == 400
    assert message in text(response)
    assert not EventActivity.objects.exists()


def test_ignore_until_n_more_occurrences() -> None:
    group_id = occur()
    client = resolver()
    assert client.post(STATE, {"ids": group_id, "action": "ignore", "more": "2"}).status_code == 302
    assert EventGroup.objects.get(pk=group_id).state == "ignored"
    assert "Ignored for 2 more occurrences." in text(client.get(GROUP, {"id": group_id}))

    occur()
    assert EventGroup.objects.get(pk=group_id).state == "ignored"
    occur()  # the second one more: the ignore ends
    group = EventGroup.objects.get(pk=group_id)
    assert group.state == "unresolved" and group.ignored_until_count is None


def test_ignore_until_a_date_ends_at_that_date() -> None:
    group_id = occur()
    client = resolver()
    tomorrow = (timezone.localdate() + timedelta(days=2)).isoformat()
    assert client.post(STATE, {"ids": group_id, "action": "ignore", "until": tomorrow}).status_code == 302
    assert f'data-group="{group_id}"' not in client.get(EVENTS).content.decode()
    assert f'data-group="{group_id}"' in client.get(EVENTS, {"state": "ignored"}).content.decode()

    EventGroup.objects.filter(pk=group_id).update(ignored_until=timezone.now() - timedelta(minutes=1))
    assert f'data-group="{group_id}"' in client.get(EVENTS).content.decode()  # the date passed: open again
    assert f'data-group="{group_id}"' not in client.get(EVENTS, {"state": "ignored"}).content.decode()


def test_the_command_filters_by_state() -> None:
    occur("open_key")
    done_id = occur("done_key")
    resolver().post(STATE, {"ids": done_id, "action": "resolve"})

    def listed(*args: str) -> str:
        out = StringIO()
        call_command("integrity", "events", "--since", "all", *args, stdout=out)
        return out.getvalue()

    assert "open_key" in listed() and "done_key" not in listed()
    assert "done_key" in listed("--state", "resolved") and "open_key" not in listed("--state", "resolved")
    assert "open_key" in listed("--state", "all") and "done_key" in listed("--state", "all")
    with pytest.raises(CommandError) as refused:
        call_command("integrity", "events", "--state", "closed", stdout=StringIO())
    assert refused.value.returncode == 2
    assert "Unknown state 'closed'; known: open, unresolved, regressed, resolved, ignored, all." in str(
        refused.value
    )


def test_the_dashboard_card_counts_open_groups_only() -> None:
    occur("open_key")
    done_id = occur("done_key")
    resolver().post(STATE, {"ids": done_id, "action": "resolve"})
    assert cards.event_cards()[0].value == 1
    occur("done_key")  # regressed
    card = cards.event_cards()[0]
    assert card.value == 2 and "1 regressed" in card.detail and card.level == "critical"


def test_a_resync_through_the_app_is_recorded_and_verified_on_the_group() -> None:
    """Issue 14, sections 0 and 2: after the resync the cause stays "Sequence behind", the fix shows as a fix."""
    Product.objects.create(id=50, name="Imported with its id", price=1)
    set_sequence_next("shop_product_id_seq", 50)  # the next insert collides with it
    group_id = occur()  # what the middleware wrote for that insert
    client = resolver()
    assert "Sequence behind" in text(client.get(GROUP, {"id": group_id}))  # first explained: kept

    admin = Client()
    admin.force_login(make_user("superuser", username="bob"))
    response = admin.post("/admin/integrity/sequence/resync/", {"key": "default:shop.Product:id"})
    assert response.status_code == 302

    page = text(client.get(GROUP, {"id": group_id}))
    assert "Sequence behind" in page and "Explicit ids" not in page
    assert "Resynced public.shop_product_id_seq" in page and "by bob at" in page
    assert "no occurrence since." in page and "The fix looks verified: resolve the group?" in page

    occur()  # it happens again after the fix
    page = text(client.get(GROUP, {"id": group_id}))
    assert "1 occurrence since: the fix did not stop it." in page


def test_a_merge_through_the_app_is_recorded_on_the_rules_group(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from demo.crm.models import Company
    from integrity.duplicates.rules import get_rule
    from integrity.merge.execute import merge
    from tests.helpers import run

    keep = Company.objects.create(name="Acme", vat_number="DE123")
    dup = Company.objects.create(name="ACME GmbH", vat_number="DE123")
    v = violation_of(
        lambda: run("CREATE UNIQUE INDEX crm_company_vat_number_key ON crm_company (vat_number)")
    )
    group = group_of(v)
    rule = get_rule("default:crm.Company:unique:vat_number")
    with django_capture_on_commit_callbacks(execute=True):
        merge(rule, keep.pk, [dup.pk])

    fixed = EventActivity.objects.get(group=group, action="fixed")
    assert fixed.note == f"Merged {dup.pk} into {keep.pk}" and fixed.count == group.count
    page = text(resolver().get(GROUP, {"id": group.pk}))
    assert "Existing duplicates" in page and f"Merged {dup.pk} into {keep.pk}" in page
    assert "no occurrence since." in page
