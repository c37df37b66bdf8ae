"""The demo's violation pages, end to end: real requests to a live server, then the events page.

Each page of ``demo/violations`` raises a real IntegrityError; the events page
must then list one group per kind, each with the explanation of its story.
The ticket race needs requests at the same time: four at once compute the same
``MAX(number) + 1``, so three collide close together.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from demo import seed, seed_crm
from demo.violations.models import NumberedTicket
from integrity.models import EventGroup
from tests.helpers import (
    browser_page,
    client_for,
    post,
    rows_of,
    text,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def demo() -> Iterator[None]:
    seed.load()
    yield
    seed_crm.undo_failed_concurrent_index()


def status_of(base: str, path: str) -> int:
    return post(base, path).status


def causes(content: bytes) -> dict[str, str]:
    """The events page's rows: constraint (or table) -> the cause shown."""
    rows = re.findall(r'<tr[^>]*data-group="\d+"[^>]*>(.*?)</tr>', content.decode(), re.S)
    found = {}
    for row in rows:
        target = re.search(r'<td class="constraint[^"]*"><code>([^<]*)</code>', row)
        cause = re.search(r'<td class="cause[^"]*">([^<]*)</td>', row)
        assert target and cause, row
        found[target.group(1)] = cause.group(1).strip()
    return found


def test_every_demo_violation_is_grouped_on_the_events_page_with_its_explanation(live_server, demo) -> None:
    base = live_server.url
    for page in ("sequence", "hidden-row", "foreign-key", "not-null", "check", "exclusion"):
        assert status_of(base, f"/demo/violations/{page}/") == 500, page
    statuses: list[int] = []
    racers = [
        threading.Thread(
            target=lambda: statuses.append(status_of(base, "/demo/violations/ticket-race/?sleep=0.5"))
        )
        for _ in range(4)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert sorted(statuses) == [200, 500, 500, 500]  # one got the number, three collided

    admin = client_for("superuser")
    response = admin.get("/admin/integrity/eventgroup/")
    assert response.status_code == 200
    shown = causes(response.content)
    assert shown["shop_product_pkey"] == "Sequence behind"
    assert shown["clinic_doctor_pkey"] == "Explicit ids or a filtering base manager"
    assert shown["helpdesk_ticket_number_key"] == "Race in read-then-write code"
    assert shown["violations_account_balance_gte_0"] == "Check failed"
    assert "Overlapping rows" in shown.values()
    assert "Missing value" in shown.values()
    assert "Parent deleted or never created" in shown.values()
    race = EventGroup.objects.get(constraint="helpdesk_ticket_number_key")
    assert race.count == 3

    detail = admin.get(f"/admin/integrity/eventgroup/group/?id={race.pk}")
    assert "get_or_create / update_or_create" in text(detail)
    assert 'id="event-fix"' in detail.content.decode()  # ticket_sequence is behind too: its resync is the fix
    doctor = EventGroup.objects.get(constraint="clinic_doctor_pkey")
    assert "clinic.Doctor" in text(admin.get(f"/admin/integrity/eventgroup/group/?id={doctor.pk}"))


@pytest.mark.browser
def test_the_four_at_once_button_races_the_ticket_numbers(live_server, demo) -> None:
    with browser_page() as page:
        page.goto(f"{live_server.url}/demo/violations/")
        page.get_by_role("button", name="Four at once").click()
        expect(page.locator("#race-result")).to_have_text(re.compile(r"^\d{3}(, \d{3}){3}$"))
        result = page.locator("#race-result").inner_text()
    assert sorted(result.split(", ")) == ["200", "500", "500", "500"]
    assert EventGroup.objects.get(constraint="helpdesk_ticket_number_key").count == 3


def test_signing_up_again_and_again_with_a_taken_email_is_no_race(live_server, demo) -> None:
    """Issue 14: one request after another, each failing fast, is a value already taken, not a race."""
    base = live_server.url
    for _ in range(3):
        assert status_of(base, "/demo/violations/unique/") == 500
    admin = client_for("superuser")
    shown = causes(admin.get("/admin/integrity/eventgroup/").content)
    assert shown["violations_member_email_key"] == "Value already taken"
    group = EventGroup.objects.get(constraint="violations_member_email_key")
    assert group.count == 3
    detail = text(admin.get(f"/admin/integrity/eventgroup/group/?id={group.pk}"))
    assert (
        "Validate it before saving" in detail and "validate_unique() (ModelForm does) before saving" in detail
    )


def test_the_sequence_at_its_maximum_page_is_an_outage_on_the_events_page(live_server, demo) -> None:
    assert status_of(live_server.url, "/demo/violations/sequence-max/") == 500
    shown = causes(client_for("superuser").get("/admin/integrity/eventgroup/").content)
    assert shown["violations_coupon_id_seq"] == "Sequence at its maximum"


def test_the_ticket_races_sample_shows_the_models_save_line_where_the_number_collided(
    live_server, demo
) -> None:
    """MAX + 1 tickets: the INSERT that collides is the one in the model's save(), after its MAX + 1."""
    statuses: list[int] = []
    racers = [
        threading.Thread(
            target=lambda: statuses.append(
                status_of(live_server.url, "/demo/violations/ticket-race/?sleep=0.5")
            )
        )
        for _ in range(2)
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert sorted(statuses) == [200, 500]
    race = EventGroup.objects.get(constraint="helpdesk_ticket_number_key")
    source = Path(inspect.getsourcefile(NumberedTicket) or "").read_text().splitlines()
    save_line = next(n for n, line in enumerate(source, 1) if line.strip() == "super().save(*args, **kwargs)")
    innermost, caller = race.samples.get().locations[:2]
    assert innermost == {
        "file": "demo/violations/models.py",
        "line": save_line,
        "function": "NumberedTicket.save",
        "code": "super().save(*args, **kwargs)",
    }
    assert (caller["file"], caller["function"], caller["code"]) == (
        "demo/violations/views.py",
        "ticket_race",
        "ticket.save()",
    )
    detail = client_for("superuser").get(f"/admin/integrity/eventgroup/group/?id={race.pk}")
    rows = rows_of(detail.content, "data-location")
    assert [r.attrs["data-location"] for r in rows] == [f"demo/violations/models.py:{save_line}"]
    assert " ".join(rows[0].cells[1].split()) == f"demo/violations/models.py:{save_line}"
    assert "NumberedTicket.save" in rows[0].cells[2] and rows[0].cells[0].strip() == "1"
