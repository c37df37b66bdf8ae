"""The demo's events story (demo.violations.story) and its sign-up form that answers a race with a field error."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from demo.violations import story
from demo.violations.models import Member
from integrity.events import lifecycle, trends
from integrity.models import EventGroup
from tests.pages import KEY_SHAPE, SEED, visible_text

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def admin() -> User:
    return User.objects.create_superuser("admin", "admin@example.com", "pw")


def test_the_story_leaves_a_regressed_group_and_a_verified_resync(admin: User) -> None:
    regressed, resynced = story.tell(admin)
    assert regressed.state == lifecycle.REGRESSED and regressed.count == len(story.OVERDRAWN_AGO) + 1
    assert regressed.constraint == "violations_account_balance_gte_0"
    check = lifecycle.verification(resynced)
    assert check is not None and check.stopped and check.fix.user == admin
    assert resynced.constraint == "violations_member_pkey" and resynced.count == len(story.IMPORT_AGO)
    # The charts have a history: the occurrences are spread over the past hours and days.
    hours = [p.count for p in trends.series(resynced.pk, trends.HOUR)]
    assert sum(hours) == len(story.IMPORT_AGO) and len([c for c in hours if c]) > 3

    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/integrity/eventgroup/group/?id={resynced.pk}").content.decode()
    assert re.search(r'id="event-verified" data-since="0"', page)
    assert "Resynced" in page and "no occurrence since." in page
    page = client.get(f"/admin/integrity/eventgroup/group/?id={regressed.pk}").content.decode()
    assert 'id="event-state-label">Regressed<' in page


def test_telling_it_again_tells_it_again(admin: User) -> None:
    story.tell(admin)
    EventGroup.objects.all().delete()
    regressed, resynced = story.tell(admin)
    assert regressed.state == lifecycle.REGRESSED
    assert lifecycle.verification(resynced) is not None


def test_the_sign_up_form_answers_the_race_with_the_fields_error(client: Client) -> None:
    response = client.post("/demo/violations/sign-up-form/", {"email": "race@example.com"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Member with this Email already exists." in page
    assert 'value="race@example.com"' in page  # the form the user filled, to try again
    shown = visible_text(response.content)  # names as a person knows them: no constraint, table or key
    assert not KEY_SHAPE.findall(shown) and not SEED.findall(shown)
    assert not re.search(r"violations_member|violations\.Member|email_key", shown), shown
    assert Member.objects.filter(email="race@example.com").count() == 1  # the other request's
    assert client.get("/demo/violations/").status_code == 200
    assert "answers with the field" in client.get("/demo/violations/").content.decode()
