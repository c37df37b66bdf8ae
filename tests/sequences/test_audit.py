"""The audit trail (integrity.audit): SequenceResync rows and admin LogEntries."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType

from integrity.models import SequenceResync
from integrity.sequences.audit import record_resync
from integrity.sequences.backend import SequenceLink

pytestmark = pytest.mark.django_db(databases="__all__")


def link(
    schema: str = "public", table: str = "shop_coupon", sequence: str = "shop_coupon_id_seq"
) -> SequenceLink:
    return SequenceLink(
        ref=0,
        schema=schema,
        table=table,
        column="id",
        column_type="bigint",
        sequence_schema=schema,
        sequence=sequence,
        sequence_type="bigint",
        start=1,
        increment=1,
        min_value=1,
        max_value=2**63 - 1,
        kind="identity",
        sequence_readable=True,
        column_readable=True,
    )


def test_record_without_a_user_writes_only_the_audit_row():
    pk = record_resync("default", "shop.Coupon", link(), 1, 6)
    record = SequenceResync.objects.get()
    assert record.pk == pk
    assert (record.user, record.database, record.model, record.table, record.column, record.sequence) == (
        None,
        "default",
        "shop.Coupon",
        "public.shop_coupon",
        "id",
        "public.shop_coupon_id_seq",
    )
    assert (record.value_before, record.value_after, record.lowered) == (1, 6, False)
    assert record.created_at is not None
    assert not LogEntry.objects.exists()


def test_record_with_a_user_adds_an_admin_log_entry(admin_user):
    pk = record_resync("default", "shop.Coupon", link(), 1, 6, user=admin_user)
    record = SequenceResync.objects.get(pk=pk)
    assert record.user == admin_user
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag, entry.object_id) == (admin_user, CHANGE, str(pk))
    assert entry.content_type == ContentType.objects.get_for_model(SequenceResync)
    assert entry.get_change_message() == "Resynced public.shop_coupon_id_seq on default: next value 1 → 6"
    assert entry.object_repr == "public.shop_coupon_id_seq: 1 → 6"
    assert entry.get_admin_url() == f"/admin/integrity/sequenceresync/{pk}/change/"


def test_lowering_is_recorded_as_such(admin_user):
    pk = record_resync("default", "shop.Coupon", link(), 10, 4, user=admin_user, lowered=True)
    assert SequenceResync.objects.get(pk=pk).lowered is True
    assert LogEntry.objects.get().get_change_message() == (
        "Lowered public.shop_coupon_id_seq on default: next value 10 → 4"
    )


def test_anonymous_user_counts_as_no_user():
    record_resync("default", "shop.Coupon", link(), 1, 6, user=AnonymousUser())
    assert SequenceResync.objects.get().user is None
    assert not LogEntry.objects.exists()


def test_record_of_another_alias_keeps_its_name_and_schema(admin_user):
    record_resync(
        "other", "metrics.ArchivedEntry", link("archive", "entry", "entry_id_seq"), 3, 9, user=admin_user
    )
    # The router sends writes of the audit model to "default", whatever alias was resynced.
    assert not SequenceResync.objects.using("other").exists()
    record = SequenceResync.objects.using("default").get()
    assert (record.database, record.table, record.sequence) == (
        "other",
        "archive.entry",
        "archive.entry_id_seq",
    )
    assert "on other" in LogEntry.objects.get().get_change_message()


def test_each_change_is_its_own_row(admin_user):
    first = record_resync("default", "shop.Coupon", link(), 1, 6, user=admin_user)
    second = record_resync("default", "shop.Coupon", link(), 6, 9, user=admin_user)
    assert first != second
    assert list(SequenceResync.objects.values_list("value_before", "value_after")) == [(6, 9), (1, 6)]
    assert LogEntry.objects.count() == 2
