"""Every page of the app, rendered on the demo's data: no internal key and no "seed" reaches a person.

The pages are found from the admin's own URL patterns (every ModelAdmin of the
app, the dashboard included), so a page added later is covered at once: a
pattern without a sample in ``tests/pages.py`` fails the test until it gets
one. The text checked is what a person reads: the page's text, plus the
attributes a browser shows (titles, button labels, placeholders, alt and aria
labels); hidden inputs and links may keep the keys, which are ids there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.test import Client

from demo import seed_crm
from tests.helpers import PRODUCT_KEY, VAT_KEY, make_user
from tests.pages import KEY_SHAPE, SAMPLES, SEED, Demo, app_patterns, load_demo, visible_text

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def demo() -> Iterator[Demo]:
    yield load_demo()
    seed_crm.undo_failed_concurrent_index()


def test_every_url_pattern_of_the_app_has_a_sample() -> None:
    missing = [name for name in app_patterns() if name not in SAMPLES]
    assert not missing, f"add a sample request for these pages to SAMPLES: {missing}"


def test_no_page_shows_an_internal_key_or_the_word_seed(demo: Demo) -> None:
    keys = demo.keys
    assert PRODUCT_KEY in keys and VAT_KEY in keys
    assert len(demo.events) >= 5
    leaks: list[str] = []
    pages = 0
    for name in app_patterns():
        samples = SAMPLES[name](demo)
        assert samples, f"no sample of {name!r} on the demo's data"
        for sample in samples:
            response = sample.send(demo.client)
            where = f"{sample.method} {sample.path} {sample.data or ''}"
            assert response.status_code < 500, where
            if response.status_code in (301, 302):
                continue
            pages += 1
            shown = visible_text(response.content)
            assert shown, where
            found = [k for k in keys if k in shown] + KEY_SHAPE.findall(shown) + SEED.findall(shown)
            if found:
                leaks.append(f"{where}: {sorted(set(found))}")
    assert pages > 40
    assert not leaks, "\n".join(leaks)


@pytest.mark.django_db(databases="__all__")
def test_the_demo_tells_its_stories_in_words() -> None:
    from demo.management.commands.demo import Command

    page = Client().get("/demo/violations/")

    assert page.status_code == 200
    shown = visible_text(page.content)
    assert "a data migration gave shop.Product explicit ids" in shown
    assert not SEED.findall(shown)
    assert not SEED.findall(str(Command.help))


def test_without_permissions_every_page_is_an_admin_page_that_says_what_is_missing(demo: Demo) -> None:
    """Staff with none of the app's permissions: each page is a 403 naming what it needs, nothing else shown."""
    client = Client()
    client.force_login(make_user("staff", [], username="nobody"))
    statuses = set()
    for name in app_patterns():
        for sample in SAMPLES[name](demo):
            response = sample.send(client)
            where = f"{sample.method} {sample.path} {sample.data or ''}"
            statuses.add(response.status_code)
            if response.status_code in (
                301,
                302,
                405,
            ):  # Django's redirect to the change page; the wrong method
                continue
            assert response.status_code == 403, where
            assert 'id="content-main"' in response.content.decode(), where  # the admin's page, styled
            shown = visible_text(response.content)
            assert re.search(r"“integrity\.\w+”|The app writes the", shown), f"{where}: {shown[-300:]}"
            assert not [k for k in demo.keys if k in shown] and not KEY_SHAPE.findall(shown), where
    assert 403 in statuses
