"""``MergeDuplicates`` refuses, before touching a row, what it cannot do exactly from a migration.

It runs the engine on the project's current models; placed before the
migration that adds a column those models have (theirs, or a referencing
model's), the engine would read a column the table does not have yet. The
column is dropped inside the test's transaction (DDL is transactional in
PostgreSQL), which is what the database looks like at that point of the
migrations.
"""

from __future__ import annotations

import pytest
from django.db import connection

from integrity.merge import migration
from integrity.merge.plan import MergeRefused
from tests.merging.models import Note, Person


def _drop(table: str, column: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign key checks: ALTER refuses those
        cursor.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')


@pytest.mark.django_db
def test_a_column_of_the_model_not_migrated_yet_is_refused_with_its_name() -> None:
    Person.objects.create(email="a@example.com")
    Person.objects.create(email="a@example.com")
    _drop(Person._meta.db_table, "nickname")
    rule = migration.build_rule("default", Person, fields=["email"])
    with pytest.raises(
        MergeRefused, match=r'these columns are not in the database.*"merging_person"\.nickname'
    ):
        migration.merge_everything(rule, "oldest")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM merging_person WHERE email = 'a@example.com'")
        assert cursor.fetchone() == (2,)


@pytest.mark.django_db
def test_a_column_of_a_referencing_model_not_migrated_yet_is_refused() -> None:
    _drop(Note._meta.db_table, "text")
    rule = migration.build_rule("default", Person, fields=["email"])
    with pytest.raises(MergeRefused, match=r'"merging_note"\.text'):
        migration.merge_everything(rule, "oldest")


@pytest.mark.django_db
def test_a_key_field_the_model_does_not_have_is_refused() -> None:
    with pytest.raises(MergeRefused, match="has no field 'mail' at this point of the migrations"):
        migration.build_rule("default", Person, fields=["mail"])
