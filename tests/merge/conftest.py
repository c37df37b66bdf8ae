"""The merge tests' shared fixture: one configured rule over the test models' people, by email."""

from collections.abc import Iterator

import pytest
from django.test import override_settings

EMAIL_RULE = [{"model": "merging.Person", "fields": ["email"], "name": "email"}]


@pytest.fixture
def email_rule() -> Iterator[None]:
    with override_settings(INTEGRITY_DUPLICATE_RULES=EMAIL_RULE):
        yield
