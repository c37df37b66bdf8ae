"""The test that failed for days: it creates a category. Run by Django's test runner in a subprocess.

The test database it runs on was built by ``migrate``, data migration
included, with ``INTEGRITY_AFTER_MIGRATE`` as the environment sets it.
"""

from __future__ import annotations

from django.test import TestCase

from tests.explicit_ids.models import Category


class CategoryTest(TestCase):
    def test_create_category(self) -> None:
        category = Category._default_manager.create(title="category_foo2", slug="categoryfoo2")
        self.assertEqual(category.pk, 3)
        self.assertEqual(Category._default_manager.count(), 3)
