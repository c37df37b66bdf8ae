"""What the duplicates pages read from requests, as Django forms; and the Merge form the group page shows.

The merge views (:mod:`integrity.merge.views`) parse what this form posts
with ``MergeForm``; it lives here, with the names of its inputs, so that the
group page does not import the merge room (merge builds on duplicates, not
the other way round). A field that cannot be parsed is a ``ValidationError``
whose ``code`` is the HTTP status the page answers with
(:func:`integrity.pages.refusal`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import Model
from django.http import HttpRequest
from django.utils.translation import gettext as _

from integrity import permissions
from integrity.duplicates.rules import InvalidPk, Rule, RuleNotFound, get_rule, parse_pk
from integrity.duplicates.service import MOST_REFERENCED, POLICIES, most_referenced
from integrity.pages import FilterForm, PageAdmin, Refused, page_url, text_field

__all__ = [
    "FIELD_PREFIX",
    "EnforceForm",
    "EnforceRunForm",
    "KEEP_PREFIX",
    "MergeAllForm",
    "MergeForm",
    "RuleFilterForm",
    "can_merge",
    "merge_form",
    "rule_from",
]

FIELD_PREFIX, KEEP_PREFIX = "field-", "keep-"


def rule_from(key: str) -> Rule:
    """The rule with this key, as a ``Refused`` 404 when there is none (or it is not on PostgreSQL)."""
    try:
        rule = get_rule(key)
    except RuleNotFound:
        raise Refused(_("There is no duplicate rule %(key)r.") % {"key": key}, 404) from None
    if connections[rule.database].vendor != "postgresql":
        raise Refused(_("Duplicates can only be checked on PostgreSQL databases."), 404)
    return rule


class RuleFilterForm(FilterForm):
    """The rules page's filters; any value is accepted (one that matches nothing shows no rule).

    Without ``show=all`` (and without a state chosen) only the rules the
    database does not enforce are listed.
    """

    enforcement = text_field()
    app = text_field()
    database = text_field()
    show = text_field()
    q = text_field()  # the search: every word in the model, the fields or expression, the rule's name


class MultipleValueField(forms.Field):
    """Every value posted under one name (``request.POST.getlist``), as strings."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        return [str(v) for v in value or []]


class RuleForm(forms.Form):
    """A form about one rule: ``rule`` (a key) cleans to the ``Rule``; a key that names none is a 404."""

    rule = text_field()

    def clean_rule(self) -> Rule:
        try:
            return rule_from(self.cleaned_data["rule"])
        except Refused as exc:
            raise ValidationError(str(exc), code=str(exc.status)) from None


class MergeForm(RuleForm):
    """The merge POST: the survivor, the rows merged into it, a survivor per field, a row kept per conflict.

    ``field-<name>`` and ``keep-<conflict id>`` inputs (their names are the
    data's) are read in ``clean`` into ``fields`` and ``resolutions``.
    """

    survivor = text_field()
    remove = MultipleValueField(required=False)
    step = text_field()
    token = text_field()

    def _pk(self, rule: Rule, raw: Any) -> Any:
        try:
            return parse_pk(rule, raw)
        except InvalidPk as exc:
            raise ValidationError(str(exc), code="400") from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        rule = data.get("rule")
        if not isinstance(rule, Rule):
            return data  # the rule's own error says why
        try:
            data["survivor"] = self._pk(rule, data.get("survivor", ""))
            data["remove"] = [self._pk(rule, raw) for raw in data.get("remove", [])]
            data["fields"] = {
                key[len(FIELD_PREFIX) :]: self._pk(rule, value)
                for key, value in self.data.items()
                if key.startswith(FIELD_PREFIX) and value
            }
        except ValidationError as exc:
            self.add_error(None, exc)
            return data
        data["resolutions"] = {
            key[len(KEEP_PREFIX) :]: value
            for key, value in self.data.items()
            if key.startswith(KEEP_PREFIX) and value
        }
        return data


class MergeAllForm(RuleForm):
    """The "merge every group" POST: the policy, the step, and what the batches so far carried along."""

    policy = text_field()
    step = text_field()
    done = text_field()  # the page's own counter, not the user's input: a bad one restarts at 0
    first = text_field()  # the first and last merge record of the run so far (ids; bad ones are dropped)
    last = text_field()
    skip = MultipleValueField(required=False)
    skipped = MultipleValueField(required=False)

    def clean_policy(self) -> str:
        policy = self.cleaned_data["policy"] or MOST_REFERENCED
        if policy not in POLICIES:
            raise ValidationError(_("Unknown survivor policy %(p)r.") % {"p": policy}, code="400")
        return policy

    def _count(self, name: str) -> int:
        raw = self.cleaned_data[name]
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0

    def clean_done(self) -> int:
        return self._count("done")

    def clean_first(self) -> int:
        return self._count("first")

    def clean_last(self) -> int:
        return self._count("last")


def can_merge(request: HttpRequest) -> bool:
    """Whether the user may merge: see the duplicates and merge them."""
    user = request.user
    return bool(user.has_perm(permissions.VIEW_DUPLICATES) and user.has_perm(permissions.MERGE_DUPLICATES))


def merge_form(
    request: HttpRequest,
    admin: PageAdmin,
    members: list[Model],
    totals: Mapping[Any, int],
    field_rows: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """What the group page's Merge form needs, or None when the user may not merge."""
    if not can_merge(request):
        return None
    fields = [
        {
            **row,
            "input": f"{FIELD_PREFIX}{row['name']}",
            "options": list(zip([m.pk for m in members], row["values"], strict=True)),
        }
        for row in field_rows
        if row["differs"]
    ]
    return {"url": page_url(admin, "merge"), "default": most_referenced(members, totals), "fields": fields}


class EnforceForm(RuleForm):
    """The Enforce confirmation: the rule, and the token of the SQL the page showed."""

    token = text_field()


class EnforceRunForm(forms.Form):
    """Which Enforce run a progress page shows: its id, a positive 64-bit integer (else a 400)."""

    run = forms.IntegerField(min_value=1, max_value=2**63 - 1)
