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
    ``integrity.merge_duplicates`` lets them merge a group and undo a merge;
    ``integrity.enforce_duplicaterule`` lets them build the index of a rule
    the database does not enforce (the Enforce action).
    """

    class Meta:
        managed = False
        default_permissions = ("view",)
        permissions = [
            ("merge_duplicates", _("Can merge duplicate rows and undo merges")),
            ("enforce_duplicaterule", _("Can build the index that enforces a rule")),
        ]
        verbose_name = _("duplicate rule")
        verbose_name_plural = _("duplicates")


class EnforceRun(models.Model):
    """One Enforce of one rule: the SQL it runs, where it is, and how it ended.

    Written by the build (a thread of the web process, or the command) as it
    goes, so that any process can show it; the build's live progress is read
    from ``pg_stat_progress_create_index`` by the backend ``pid``.
    """

    PENDING, RUNNING, DONE, REFUSED, FAILED = "pending", "running", "done", "refused", "failed"

    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("who"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    database = models.CharField(_("database"), max_length=100)
    rule = models.CharField(_("rule"), max_length=400, db_index=True)
    index = models.CharField(_("index"), max_length=300)
    sql = models.TextField(_("SQL"))
    status = models.CharField(_("status"), max_length=20, default=PENDING)
    step = models.CharField(_("step"), max_length=200, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    pid = models.IntegerField(_("backend pid"), null=True, blank=True)
    message = models.TextField(_("message"), blank=True)
    duplicates = models.BooleanField(_("duplicates found"), default=False)

    class Meta:
        default_permissions = ("view",)
        ordering = ["-created_at", "-id"]
        verbose_name = _("enforce run")
        verbose_name_plural = _("enforce runs")

    def __str__(self) -> str:
        return f"{self.rule}: {self.status}"

    @property
    def finished(self) -> bool:
        return self.status in (self.DONE, self.REFUSED, self.FAILED)


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


class EventGroup(models.Model):
    """IntegrityErrors with one fingerprint (database, SQLSTATE, constraint; table and columns without one).

    ``count`` counts every occurrence; only the first samples (up to
    ``INTEGRITY_EVENT_SAMPLES`` at a time) are kept as ``Event`` rows.
    ``views`` and ``paths`` count where they came from (a bounded number of
    keys each).
    """

    fingerprint = models.CharField(_("fingerprint"), max_length=64, unique=True)
    database = models.CharField(_("database"), max_length=100)
    kind = models.CharField(_("kind"), max_length=20, db_index=True)
    sqlstate = models.CharField(_("SQLSTATE"), max_length=5, blank=True)
    constraint = models.CharField(_("constraint"), max_length=300, blank=True)
    table = models.CharField(_("table"), max_length=300, blank=True)
    columns = models.JSONField(_("columns"), default=list)
    model = models.CharField(_("model"), max_length=200, blank=True, db_index=True)
    fields = models.JSONField(_("fields"), default=list)
    primary_key = models.BooleanField(_("primary key"), default=False)
    message = models.TextField(_("message"), blank=True)
    count = models.PositiveBigIntegerField(_("count"), default=0)
    handled_count = models.PositiveBigIntegerField(_("handled"), default=0)
    sampled = models.PositiveIntegerField(_("samples kept"), default=0)
    last_slot = models.PositiveBigIntegerField(default=0)  # the count of the last occurrence given a sample
    first_seen = models.DateTimeField(_("first seen"))
    last_seen = models.DateTimeField(_("last seen"), db_index=True)
    views = models.JSONField(_("views"), default=dict)
    paths = models.JSONField(_("paths"), default=dict)
    # Where in the project's code the occurrences came from: {"file:line": {file, line, function, code,
    # count}} of each one's innermost project frame (integrity.events.locations), a bounded number of keys.
    locations = models.JSONField(_("locations"), default=dict)
    # The sequence a "sequence limit" error (SQLSTATE 2200H) names.
    sequence = models.CharField(_("sequence"), max_length=300, blank=True, default="")
    # The lifecycle (integrity.events.lifecycle): unresolved, resolved, ignored, or regressed (it
    # occurred again after being resolved).
    state = models.CharField(_("state"), max_length=12, default="unresolved", db_index=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("resolved by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    regressed_at = models.DateTimeField(_("regressed"), null=True, blank=True)
    ignored_until = models.DateTimeField(_("ignored until"), null=True, blank=True)
    ignored_until_count = models.PositiveBigIntegerField(_("ignored until count"), null=True, blank=True)
    # The cause as decided from the evidence at the time of the occurrences (integrity.events.causes):
    # its code, the explanation then given, when, and the count it covers.
    cause = models.CharField(_("cause"), max_length=40, blank=True, default="")
    cause_evidence = models.JSONField(_("cause evidence"), default=dict)
    cause_at = models.DateTimeField(_("cause decided"), null=True, blank=True)
    cause_count = models.PositiveBigIntegerField(_("occurrences explained"), default=0)
    # When ADMINS were last e-mailed about it (integrity.events.notify): the rate limit's clock.
    notified_at = models.DateTimeField(_("notified"), null=True, blank=True)

    class Meta:
        default_permissions = ("view", "delete")
        permissions = [("resolve_eventgroup", _("Can resolve, ignore and reopen event groups"))]
        ordering = ["-last_seen", "-id"]
        verbose_name = _("IntegrityError event group")
        verbose_name_plural = _("IntegrityError events")

    def __str__(self) -> str:
        return f"{self.kind}: {self.constraint or self.table} ({self.count})"


class Event(models.Model):
    """One sampled occurrence of an ``EventGroup``: when, where from, and (per setting) the key values."""

    group = models.ForeignKey(EventGroup, on_delete=models.CASCADE, related_name="samples")
    created_at = models.DateTimeField(_("when"), db_index=True)
    database = models.CharField(_("database"), max_length=100)
    origin = models.CharField(_("origin"), max_length=20)  # "request" or "capture"
    method = models.CharField(_("method"), max_length=10, blank=True)
    path = models.CharField(_("path"), max_length=2000, blank=True)
    view = models.CharField(_("view"), max_length=300, blank=True)
    user_pk = models.CharField(_("user"), max_length=100, blank=True)
    # When the failing request (or capture() block) began: requests that overlap are concurrent.
    started_at = models.DateTimeField(_("request started"), null=True, blank=True)
    handled = models.BooleanField(_("handled"), default=False)
    values = models.JSONField(_("key values"), default=list)
    detail = models.TextField(_("detail"), blank=True)
    # The innermost frames of the project's code that led to the failing query, innermost first:
    # [{file, line, function, code}] (integrity.events.locations).
    locations = models.JSONField(_("locations"), default=list)

    class Meta:
        default_permissions = ("view",)
        ordering = ["-created_at", "-id"]
        verbose_name = _("IntegrityError sample")
        verbose_name_plural = _("IntegrityError samples")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.method} {self.path}".strip()


class EventActivity(models.Model):
    """One entry of a group's timeline: resolved, ignored, reopened, regressed, or a fix applied."""

    group = models.ForeignKey(EventGroup, on_delete=models.CASCADE, related_name="activity")
    created_at = models.DateTimeField(_("when"), db_index=True)
    action = models.CharField(_("action"), max_length=20)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("who"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    count = models.PositiveBigIntegerField(_("count then"), default=0)  # the group's count at that moment
    note = models.CharField(_("note"), max_length=500, blank=True)
    detail = models.JSONField(_("detail"), default=dict)

    class Meta:
        default_permissions = ("view",)
        ordering = ["created_at", "id"]
        verbose_name = _("event group activity")
        verbose_name_plural = _("event group activity")

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action}"


class EventBucket(models.Model):
    """How many times a group occurred in one hour or one day: what the charts draw, never the samples.

    Written by the recording in its upsert's statement (``integrity.events.recording``);
    hourly buckets are kept 48 hours, daily ones 30 days (``integrity.events.trends``).
    """

    HOUR, DAY = "hour", "day"

    group = models.ForeignKey(EventGroup, on_delete=models.CASCADE, related_name="buckets")
    kind = models.CharField(_("bucket"), max_length=4)
    start = models.DateTimeField(_("start"))
    count = models.PositiveBigIntegerField(_("count"), default=0)

    class Meta:
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["group", "kind", "start"], name="integrity_eventbucket_unique")
        ]
        ordering = ["group", "kind", "start"]
        verbose_name = _("event count bucket")
        verbose_name_plural = _("event count buckets")

    def __str__(self) -> str:
        return f"{self.kind} {self.start:%Y-%m-%d %H:%M}: {self.count}"


class Job(models.Model):
    """One long operation run by a task worker (or in the request, with no worker): its progress and outcome.

    Written by the worker as it goes (``done``/``total`` per unit of work,
    ``updated_at`` as its heartbeat), so any web process shows it. A job is
    seen with the permissions of the operation it runs
    (``integrity.jobs.service.PERMISSIONS``); the model has none of its own.
    """

    SCAN, SCAN_ALL, MERGE_ALL, ENFORCE, RESYNC_ALL, PRUNE = (
        "scan",
        "scan_all",
        "merge_all",
        "enforce",
        "resync_all",
        "prune",
    )
    KINDS = [
        (SCAN, _("Scan a rule")),
        (SCAN_ALL, _("Scan every unenforced rule")),
        (MERGE_ALL, _("Merge every group")),
        (ENFORCE, _("Enforce a rule")),
        (RESYNC_ALL, _("Resync sequences")),
        (PRUNE, _("Prune old events")),
    ]
    QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = "queued", "running", "finished", "failed", "cancelled"
    STATUSES = [
        (QUEUED, _("queued")),
        (RUNNING, _("running")),
        (FINISHED, _("finished")),
        (FAILED, _("failed")),
        (CANCELLED, _("cancelled")),
    ]

    kind = models.CharField(_("kind"), max_length=20, choices=KINDS, db_index=True)
    what = models.CharField(_("what"), max_length=500)  # the rule or database, as the pages show it
    params = models.JSONField(_("parameters"), default=dict)
    status = models.CharField(_("status"), max_length=20, choices=STATUSES, default=QUEUED, db_index=True)
    done = models.PositiveBigIntegerField(_("done"), default=0)
    total = models.PositiveBigIntegerField(_("total"), null=True, blank=True)
    result = models.JSONField(_("result"), default=dict)
    error = models.TextField(_("error"), blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("who"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    backend = models.CharField(_("task backend"), max_length=100, blank=True)
    task_id = models.CharField(_("task id"), max_length=200, blank=True)
    cancel_requested = models.BooleanField(_("cancel requested"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    updated_at = models.DateTimeField(_("heartbeat"), auto_now=True)

    class Meta:
        default_permissions = ()
        ordering = ["-created_at", "-id"]
        verbose_name = _("job")
        verbose_name_plural = _("jobs")

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.what} ({self.status})"

    @property
    def active(self) -> bool:
        """Queued or running: a worker may still change it."""
        return self.status in (self.QUEUED, self.RUNNING)
