"""Models of the app: the audit trail, and table-less models that anchor pages."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Sequence(models.Model):
    """Anchor of the sequences page in the admin; it has no table.

    Its permissions are the page's: ``integrity.view_sequence`` to see it,
    ``integrity.resync_sequence`` to change sequences.
    """

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [("resync_sequence", _("Can resync database sequences"))]
        verbose_name = _("sequence")
        verbose_name_plural = _("sequences")


class DuplicateRule(models.Model):
    """Anchor of the duplicates pages in the admin; it has no table.

    ``integrity.view_duplicaterule`` lets a user see rules, groups and members;
    ``integrity.merge_duplicates`` lets them merge a group and undo a merge.
    """

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [("merge_duplicates", _("Can merge duplicate rows and undo merges"))]
        verbose_name = _("duplicate rule")
        verbose_name_plural = _("duplicates")


class SequenceResync(models.Model):
    """One change of one sequence, made through the admin or the command."""

    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("who"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    database = models.CharField(_("database"), max_length=100)
    model = models.CharField(_("model"), max_length=200)
    table = models.CharField(_("table"), max_length=300)
    column = models.CharField(_("column"), max_length=200)
    sequence = models.CharField(_("sequence"), max_length=300)
    value_before = models.BigIntegerField(_("next value before"))
    value_after = models.BigIntegerField(_("next value after"))
    lowered = models.BooleanField(_("lowered"), default=False)

    class Meta:
        default_permissions = ("view",)
        ordering = ["-created_at", "-id"]
        verbose_name = _("sequence resync")
        verbose_name_plural = _("sequence resyncs")

    def __str__(self) -> str:
        return f"{self.sequence}: {self.value_before} → {self.value_after}"


class MergeRecord(models.Model):
    """One merge of duplicate rows into a survivor: everything needed to see it and to undo it.

    ``data`` holds the snapshot (``row_to_json``) of every deleted row, every
    re-pointed reference (holder, column, primary keys, the value each held)
    and the survivor's fields before and after.
    """

    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("who"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    database = models.CharField(_("database"), max_length=100)
    model = models.CharField(_("model"), max_length=200)
    rule = models.CharField(_("rule"), max_length=400)
    survivor = models.CharField(_("survivor"), max_length=200)
    removed = models.JSONField(_("removed"), default=list)
    repointed = models.PositiveIntegerField(_("references moved"), default=0)
    deleted = models.PositiveIntegerField(_("rows deleted"), default=0)
    data = models.JSONField(_("snapshot"), default=dict)
    undone_at = models.DateTimeField(_("undone"), null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("undone by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        default_permissions = ("view",)
        ordering = ["-created_at", "-id"]
        verbose_name = _("merge")
        verbose_name_plural = _("merge log")

    def __str__(self) -> str:
        removed = ", ".join(str(pk) for pk in self.removed)
        return f"{self.model} {removed} → {self.survivor}"
