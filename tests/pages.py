"""The app's pages, for the tests that visit every one: a sample request of each URL pattern on the demo's data.

``SAMPLES`` maps each URL pattern's name to the requests that show its pages
(``app_patterns`` lists the patterns from the admin itself, so a new page
without a sample fails ``tests/test_every_page.py``); ``load_demo`` prepares
the demo's data as a person leaves it after using every page once; and
``visible_text`` / ``form_of`` read a page as a person and a browser do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from django.contrib import admin
from django.test import Client
from django.urls import URLPattern

from demo import seed
from integrity import duplicates, sequences
from integrity.models import EnforceRun, EventGroup, Job, MergeRecord, SequenceResync
from tests.helpers import PRODUCT_KEY, VAT_KEY, make_user

ADMIN = "/admin/integrity/"
# The demo's IntegrityErrors: a sequence behind, a hidden row, a unique field, a foreign key.
VIOLATIONS = ("sequence", "hidden-row", "unique", "foreign-key", "not-null", "sequence-max")
SEED = re.compile(r"\bseeds?\b", re.IGNORECASE)
# Any "alias:app_label.Model:name" key, also of an object this test did not list.
KEY_SHAPE = re.compile(r"\b[\w-]+:[a-z_][a-z0-9_]*\.[A-Z]\w*:\w")
SHOWN_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label")


class _VisibleText(HTMLParser):
    """What a browser shows of a page: text outside script/style/template, labels of buttons, titles."""

    HIDDEN = {"script", "style", "template", "head"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in self.HIDDEN:
            self._hidden += 1
        self.parts += [a[name] for name in SHOWN_ATTRIBUTES if a.get(name)]
        if tag == "input" and a.get("type") in ("submit", "button") and a.get("value"):
            self.parts.append(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_text(content: bytes) -> str:
    parser = _VisibleText()
    parser.feed(content.decode())
    return " ".join(" ".join(parser.parts).split())


def _is_submit(tag: str, attrs: dict[str, str]) -> bool:
    return (tag == "button" and attrs.get("type", "submit") == "submit") or (
        tag == "input" and attrs.get("type") == "submit"
    )


class _Forms(HTMLParser):
    """Each form's action and the values it submits (hidden, checked, text); a radio left unchosen: its first.

    Submitting a form unchanged presses its first submit button (as Enter does), which sends that button's
    name and value when it has a name.
    """

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        self._current: list[tuple[str, str]] | None = None
        self._radios: dict[str, str] = {}
        self._pressed = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current, self._pressed = [], False
            self.forms[a.get("id", "")] = (a.get("action", ""), self._current)
        elif self._current is not None and not self._pressed and _is_submit(tag, a):
            self._pressed = True
            if a.get("name"):
                self._current.append((a["name"], a.get("value", "")))
        elif tag == "input" and self._current is not None and a.get("name"):
            kind = a.get("type", "text")
            if kind == "radio":
                self._radios.setdefault(a["name"], a.get("value", ""))
            if kind in ("radio", "checkbox") and "checked" not in a:
                return
            if kind not in ("submit", "button"):
                self._current.append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._current is not None:
            chosen = {name for name, _value in self._current}
            self._current += [(n, v) for n, v in self._radios.items() if n not in chosen]
            self._current, self._radios = None, {}


def form_of(content: bytes, form_id: str) -> tuple[str, dict[str, list[str]]]:
    """The form ``form_id`` of a page: its action and what submitting it unchanged sends."""
    parser = _Forms()
    parser.feed(content.decode())
    assert form_id in parser.forms, f"no form #{form_id} on the page"
    action, pairs = parser.forms[form_id]
    data: dict[str, list[str]] = {}
    for name, value in pairs:
        data.setdefault(name, []).append(value)
    return action, data


@dataclass
class Demo:
    """The demo's data after a person has used every page once: what the samples' URLs need."""

    client: Client
    rules: list[duplicates.Rule]
    sequences: list[sequences.SequenceInfo]
    group_pk: Any
    record: MergeRecord
    resync: SequenceResync
    run: EnforceRun
    events: list[EventGroup] = field(default_factory=list)
    job: Job | None = None

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self.rules] + [s.key for s in self.sequences]


@dataclass(frozen=True)
class Sample:
    """One request to one page: method, path, data."""

    method: str
    path: str
    data: dict[str, Any] = field(default_factory=dict)

    def send(self, client: Client) -> Any:
        return getattr(client, self.method.lower())(self.path, self.data)


def _merge_a_group(client: Client, rule_key: str, pk: Any) -> MergeRecord:
    """Merge the group of ``pk`` as a person does: its form as it stands, the preview, the confirm."""
    group = client.get(f"{ADMIN}duplicaterule/group/", {"rule": rule_key, "pk": pk})
    assert group.status_code == 200
    action, data = form_of(group.content, "merge-form")
    preview = client.post(action, data)
    assert preview.status_code == 200, visible_text(preview.content)
    if b'id="merge-pending"' in preview.content:
        # A conflict's row to choose: keep the first offered and update the preview, as the page asks.
        action, data = form_of(preview.content, "merge-confirm")
        preview = client.post(action, {**data, "step": "preview"})
        assert preview.status_code == 200 and b'id="merge-pending"' not in preview.content
    done = client.post(*form_of(preview.content, "merge-confirm"))
    assert done.status_code == 302, visible_text(done.content)
    return MergeRecord.objects.get()


def load_demo(username: str = "pat") -> Demo:
    """The demo's data, its IntegrityErrors raised, a group merged, a sequence resynced, an Enforce run.

    ``username``: the superuser the demo's client is logged in as.
    """
    seed.load()
    client = Client(raise_request_exception=False)
    client.force_login(make_user("superuser", username=username))
    for page in VIOLATIONS:
        client.post(f"/demo/violations/{page}/", {"email": "taken@example.com", "password": "demo-password"})
    rules = duplicates.rules_for(["default"])
    vat = next(r for r in rules if r.key == VAT_KEY)
    # Two groups: one to merge (its record, its undo), one left to preview.
    first, second = (g.pks[0] for g in duplicates.scan(vat).groups[:2])
    record = _merge_a_group(client, VAT_KEY, first)
    assert client.post(f"{ADMIN}sequence/resync/", {"key": PRODUCT_KEY}).status_code == 302
    run = EnforceRun.objects.create(database="default", rule=VAT_KEY, index="crm_company_vat_uniq", sql="-")
    [report] = sequences.collect(["default"])
    # A scan that ran as a job (the demo's worker): its page shows the stored groups.
    scan = duplicates.scan(vat)
    job = Job.objects.create(
        kind=Job.SCAN,
        what=f"{vat.label}: {vat.description}",
        params={"rule": VAT_KEY},
        status=Job.FINISHED,
        done=1,
        total=1,
        result={
            "rule": VAT_KEY,
            "taken_at": "2026-12-03T10:00:00+00:00",
            "total_groups": scan.total_groups,
            "total_rows": scan.total_rows,
            "complete": True,
            "groups": [{"key": list(g.key), "size": g.size, "pks": g.pks} for g in scan.groups],
        },
    )
    return Demo(
        client=client,
        rules=rules,
        sequences=report.sequences,
        group_pk=second,
        record=record,
        resync=SequenceResync.objects.get(),
        run=run,
        events=list(EventGroup.objects.all()),
        job=job,
    )


def _behind(demo: Demo) -> list[str]:
    return [s.key for s in demo.sequences if s.status == sequences.BEHIND]


def _ahead(demo: Demo) -> list[str]:
    return [s.key for s in demo.sequences if s.status in (sequences.AHEAD, sequences.EMPTY)]


def _group_form(demo: Demo) -> dict[str, list[str]]:
    group = demo.client.get(f"{ADMIN}duplicaterule/group/", {"rule": VAT_KEY, "pk": demo.group_pk})
    return form_of(group.content, "merge-form")[1]


def _undo_record(demo: Demo) -> str:
    return f"{ADMIN}mergerecord/{demo.record.pk}/"


# Every route of the app -> the requests that show its pages (GET on a POST-only address included:
# the page that says what to do). Keyed by the URL pattern's name ("" for Django's unnamed redirect).
SAMPLES: dict[str, Callable[[Demo], list[Sample]]] = {
    "app_list": lambda d: [Sample("GET", ADMIN)],
    "integrity_sequence_changelist": lambda d: [
        Sample("GET", f"{ADMIN}sequence/"),
        Sample("GET", f"{ADMIN}sequence/", {"show": "all"}),
    ],
    "integrity_sequence_resync": lambda d: [Sample("GET", f"{ADMIN}sequence/resync/")],
    "integrity_sequence_resync_all": lambda d: [Sample("GET", f"{ADMIN}sequence/resync-all/")],
    "integrity_sequence_resync_selected": lambda d: [
        Sample("GET", f"{ADMIN}sequence/resync-selected/"),
        Sample("POST", f"{ADMIN}sequence/resync-selected/", {"key": [*_behind(d), *_ahead(d)]}),
    ],
    "integrity_sequence_lower": lambda d: [
        Sample("GET", f"{ADMIN}sequence/lower/", {"key": k}) for k in _ahead(d)
    ],
    "integrity_duplicaterule_changelist": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/"),
        Sample("GET", f"{ADMIN}duplicaterule/", {"show": "all"}),
    ],
    "integrity_duplicaterule_count": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/count/", {"rule": r.key}) for r in d.rules
    ],
    "integrity_duplicaterule_rule": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/rule/", {"rule": r.key}) for r in d.rules
    ],
    "integrity_duplicaterule_group": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/group/", {"rule": VAT_KEY, "pk": d.group_pk})
    ],
    "integrity_duplicaterule_group_pager": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/group/pager/", {"rule": VAT_KEY, "pk": d.group_pk, **to})
        for to in ({}, {"to": "next"}, {"to": "previous"})
    ],
    "integrity_duplicaterule_summary": lambda d: [Sample("GET", f"{ADMIN}duplicaterule/summary/")],
    "integrity_duplicaterule_merge": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/merge/"),
        Sample("POST", f"{ADMIN}duplicaterule/merge/", _group_form(d)),
    ],
    "integrity_duplicaterule_merge_all": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/merge-all/"),
        Sample("POST", f"{ADMIN}duplicaterule/merge-all/", {"rule": VAT_KEY}),
    ],
    "integrity_duplicaterule_enforce": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/enforce/", {"rule": r.key}) for r in d.rules
    ],
    "integrity_duplicaterule_enforce_run": lambda d: [
        Sample("GET", f"{ADMIN}duplicaterule/enforce/run/", {"run": d.run.pk})
    ],
    "integrity_duplicaterule_scan_job": lambda d: [Sample("GET", f"{ADMIN}duplicaterule/scan-job/")],
    "integrity_duplicaterule_scan_all_job": lambda d: [Sample("GET", f"{ADMIN}duplicaterule/scan-all-job/")],
    "integrity_job_changelist": lambda d: [Sample("GET", f"{ADMIN}job/")],
    "integrity_job_job": lambda d: [Sample("GET", f"{ADMIN}job/{d.job.pk if d.job else 0}/")],
    "integrity_job_cancel": lambda d: [Sample("GET", f"{ADMIN}job/{d.job.pk if d.job else 0}/cancel/")],
    "integrity_sequenceresync_changelist": lambda d: [Sample("GET", f"{ADMIN}sequenceresync/")],
    "integrity_sequenceresync_add": lambda d: [Sample("GET", f"{ADMIN}sequenceresync/add/")],
    "integrity_sequenceresync_history": lambda d: [
        Sample("GET", f"{ADMIN}sequenceresync/{d.resync.pk}/history/")
    ],
    "integrity_sequenceresync_delete": lambda d: [
        Sample("GET", f"{ADMIN}sequenceresync/{d.resync.pk}/delete/")
    ],
    "integrity_sequenceresync_change": lambda d: [
        Sample("GET", f"{ADMIN}sequenceresync/{d.resync.pk}/change/")
    ],
    "integrity_mergerecord_undo": lambda d: [
        Sample("GET", f"{_undo_record(d)}undo/"),
        Sample("POST", f"{_undo_record(d)}undo/"),
    ],
    "integrity_mergerecord_change": lambda d: [Sample("GET", f"{_undo_record(d)}change/")],
    "integrity_mergerecord_changelist": lambda d: [Sample("GET", f"{ADMIN}mergerecord/")],
    "integrity_mergerecord_add": lambda d: [Sample("GET", f"{ADMIN}mergerecord/add/")],
    "integrity_mergerecord_history": lambda d: [Sample("GET", f"{_undo_record(d)}history/")],
    "integrity_mergerecord_delete": lambda d: [Sample("GET", f"{_undo_record(d)}delete/")],
    "integrity_eventgroup_changelist": lambda d: [Sample("GET", f"{ADMIN}eventgroup/")],
    "integrity_eventgroup_group": lambda d: [
        Sample("GET", f"{ADMIN}eventgroup/group/", {"id": g.pk}) for g in d.events
    ],
    "integrity_eventgroup_state": lambda d: [Sample("GET", f"{ADMIN}eventgroup/state/")],
    "integrity_eventgroup_prune": lambda d: [Sample("GET", f"{ADMIN}eventgroup/prune/")],
    # Django's redirect of <object_id>/ to its change page (the merge log's and the resync log's).
    "": lambda d: [Sample("GET", f"{ADMIN}sequenceresync/{d.resync.pk}/"), Sample("GET", _undo_record(d))],
}


def app_patterns() -> list[str]:
    """The name of every URL pattern of the app's ModelAdmins, and of the dashboard (the app index)."""
    names = ["app_list"]
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label == "integrity":
            names += [p.name or "" for p in model_admin.urls if isinstance(p, URLPattern)]
    return sorted(set(names))
