"""Uniqueness rules: what each model declares (or the project configures) to be unique.

A ``Rule`` is derived from ``_meta``: ``unique=True`` fields (OneToOneFields
and ``to_field`` targets included), ``unique_together``, ``UniqueConstraint``
(by fields or expressions, with ``condition`` and ``nulls_distinct``), plus
``INTEGRITY_DUPLICATE_RULES`` from the settings. No database access here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import connections
from django.db.models import F, Func, Model, Q, UniqueConstraint, Value
from django.db.models.functions import Lower, Trim

from integrity.conf import settings
from integrity.db import models_for_alias
from integrity.inputs import BadValue, pk_value

FIELD, TOGETHER, CONSTRAINT, CONFIGURED = "unique field", "unique_together", "UniqueConstraint", "configured"


class RuleNotFound(LookupError):
    """No rule with that key."""


# A value that cannot be a primary key of the rule's model; ``str()`` says so.
InvalidPk = BadValue


@dataclass(eq=False)
class Rule:
    """One uniqueness rule of one model on one database alias."""

    database: str
    model: type[Model]
    name: str
    kind: str
    fields: tuple[str, ...] = ()
    expressions: tuple[Any, ...] = ()  # Django expressions, when the rule is on expressions
    condition: Q | None = None
    nulls_distinct: bool = True
    source: str = ""
    constraint: UniqueConstraint | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def app_label(self) -> str:
        return self.model._meta.app_label

    @property
    def key(self) -> str:
        """Identifies the rule in URLs and the CLI: ``alias:app_label.Model:name`` (an id: see ``display_name``)."""
        return f"{self.database}:{self.label}:{self.name}"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(str(getattr(self.model._meta.get_field(name), "column", name)) for name in self.fields)

    @property
    def key_expressions(self) -> list[Any]:
        """What rows are grouped by: the fields, or the rule's expressions."""
        return list(self.expressions) if self.expressions else [F(name) for name in self.fields]

    @property
    def description(self) -> str:
        """Human-readable: ``email``, ``mentee, mentor`` or ``Lower(email)``."""
        if self.expressions:
            return ", ".join(describe(e) for e in self.expressions)
        return ", ".join(self.fields)

    @property
    def display_name(self) -> str:
        """The rule as a person knows it: ``crm.Company: vat_number`` (``… where …`` when partial).

        The one wording of a rule on pages, in messages and in the command's
        text; ``key`` is the id URLs, forms and ``--json`` carry.
        """
        text = f"{self.label}: {self.description}"
        return f"{text} where {self.condition_text}" if self.condition is not None else text

    @property
    def short_name(self) -> str:
        """The rule among its model's: a UniqueConstraint by its own name, the others by their fields in words."""
        return self.name if self.kind == CONSTRAINT else f"unique: {self.description}"

    @property
    def condition_text(self) -> str:
        return "" if self.condition is None else describe_q(self.condition)

    @property
    def is_expression(self) -> bool:
        return bool(self.expressions)


def describe(expression: Any) -> str:
    """A short readable form of a Django expression: ``Lower(Trim(name))``."""
    if isinstance(expression, F):
        return str(getattr(expression, "name", expression))
    if isinstance(expression, Value):
        return repr(expression.value)
    if isinstance(expression, str):
        return expression
    if isinstance(expression, Func):
        inner = ", ".join(describe(e) for e in expression.get_source_expressions())
        return f"{type(expression).__name__}({inner})"
    return str(expression)


def describe_q(q: Q) -> str:
    parts = []
    children: list[Any] = list(q.children)
    for child in children:
        if isinstance(child, Q):
            parts.append(f"({describe_q(child)})")
        else:
            lookup, value = child
            parts.append(f"{lookup}={value!r}")
    text = f" {q.connector} ".join(parts)
    return f"NOT ({text})" if q.negated else text


def _targets(model: type[Model]) -> dict[str, list[str]]:
    """Field name -> the ForeignKeys that point at it with ``to_field``."""
    found: dict[str, list[str]] = {}
    for rel in model._meta.related_objects:
        # A reverse relation's flags are seen from this side: a ForeignKey here is one_to_many.
        if rel.one_to_many or rel.one_to_one:
            target = rel.field.target_field
            if target.model is model and not target.primary_key:
                found.setdefault(target.name, []).append(f"{rel.related_model._meta.label}.{rel.field.name}")
    return found


def _field_rules(alias: str, model: type[Model]) -> list[Rule]:
    targets = _targets(model)
    rules = []
    for f in model._meta.local_concrete_fields:
        if f.unique and not f.primary_key:
            source = "OneToOneField" if f.one_to_one else "unique=True"
            if f.name in targets:
                source += f" (to_field target of {', '.join(targets[f.name])})"
            rules.append(Rule(alias, model, f"unique:{f.name}", FIELD, fields=(f.name,), source=source))
    return rules


def _together_rules(alias: str, model: type[Model]) -> list[Rule]:
    return [
        Rule(
            alias,
            model,
            f"unique_together:{','.join(names)}",
            TOGETHER,
            fields=tuple(names),
            source="unique_together",
        )
        for names in model._meta.unique_together
    ]


def _constraint_rules(alias: str, model: type[Model]) -> list[Rule]:
    rules = []
    for c in model._meta.constraints:
        if not isinstance(c, UniqueConstraint):
            continue
        rules.append(
            Rule(
                alias,
                model,
                c.name,
                CONSTRAINT,
                fields=tuple(c.fields),
                expressions=tuple(c.expressions),
                condition=c.condition,
                nulls_distinct=c.nulls_distinct is not False,
                source=f"UniqueConstraint {c.name!r}",
                constraint=c,
            )
        )
    return rules


def _configured_expression(name: str, case_insensitive: bool, trim: bool) -> Any:
    expression: Any = F(name)
    if trim:
        expression = Trim(expression)
    if case_insensitive:
        expression = Lower(expression)
    return expression


SPEC_KEYS = frozenset({"model", "fields", "case_insensitive", "trim", "nulls_equal", "name"})


def _checked_spec(spec: Any) -> tuple[str, list[str]]:
    """``(model label, field names)`` of one setting entry; a typo is an error, not a silent no-op."""
    fields = spec.get("fields") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or "model" not in spec or isinstance(fields, str) or not fields:
        raise ImproperlyConfigured(
            f"INTEGRITY_DUPLICATE_RULES entry {spec!r} needs 'model' and a non-empty list of 'fields'."
        )
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"INTEGRITY_DUPLICATE_RULES entry {spec!r}: unknown key(s) {', '.join(unknown)}."
        )
    label = str(spec["model"])
    if label.lower() not in {m._meta.label_lower for m in apps.get_models()}:
        raise ImproperlyConfigured(
            f"INTEGRITY_DUPLICATE_RULES: unknown model {label!r} (use app_label.Model)."
        )
    return label, list(fields)


def _check_fields(label: str, model: type[Model], names: list[str]) -> None:
    for name in names:
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist as exc:
            raise ImproperlyConfigured(f"INTEGRITY_DUPLICATE_RULES: {label} has no field {name!r}.") from exc


def configured_rule_errors() -> list[str]:
    """What is wrong with ``INTEGRITY_DUPLICATE_RULES``, one message per broken entry (the system check's)."""
    errors = []
    for spec in settings.DUPLICATE_RULES:
        try:
            label, names = _checked_spec(spec)
            _check_fields(label, apps.get_model(label), names)
        except ImproperlyConfigured as exc:
            errors.append(str(exc))
    return errors


def configured_rules(alias: str, models: Sequence[type[Model]]) -> list[Rule]:
    """Rules from ``INTEGRITY_DUPLICATE_RULES`` for the models living on ``alias``."""
    wanted = {m._meta.label_lower: m for m in models}
    rules = []
    for spec in settings.DUPLICATE_RULES:
        label, names = _checked_spec(spec)
        model = wanted.get(label.lower())
        if model is None:
            continue
        _check_fields(label, model, names)
        ci, trim = bool(spec.get("case_insensitive")), bool(spec.get("trim"))
        expressions = tuple(_configured_expression(n, ci, trim) for n in names) if (ci or trim) else ()
        options = [o for o, on in (("case-insensitive", ci), ("trimmed", trim)) if on]
        rules.append(
            Rule(
                alias,
                model,
                f"configured:{spec.get('name') or '_'.join(names)}",
                CONFIGURED,
                fields=tuple(names),
                expressions=expressions,
                nulls_distinct=not spec.get("nulls_equal", False),
                source="INTEGRITY_DUPLICATE_RULES" + (f" ({', '.join(options)})" if options else ""),
            )
        )
    return rules


def declared_rules(alias: str, model: type[Model]) -> list[Rule]:
    """The rules ``model`` itself declares (an auto-created M2M table's pair included); none configured."""
    return [*_field_rules(alias, model), *_together_rules(alias, model), *_constraint_rules(alias, model)]


def rules_for_alias(alias: str, models: Iterable[type[Model]] | None = None) -> list[Rule]:
    """Every rule of every model living on ``alias`` (router-aware)."""
    living = models_for_alias(alias, models)
    declared = [
        rule for model in living if not model._meta.auto_created for rule in declared_rules(alias, model)
    ]
    return declared + configured_rules(alias, living)


def rules_for(
    databases: Iterable[str] | None = None, models: Iterable[type[Model]] | None = None
) -> list[Rule]:
    """Every rule on every alias in ``databases`` (default: all)."""
    model_list = None if models is None else list(models)
    return [rule for alias in (databases or list(connections)) for rule in rules_for_alias(alias, model_list)]


def parse_pk(rule: Rule, raw: Any) -> Any:
    """``raw`` as a primary key of the rule's model; ``InvalidPk`` (which says so) if it cannot be one.

    Checked by :func:`integrity.inputs.pk_value`: type, range (the field's
    validators), NUL bytes.
    """
    return pk_value(rule.model, raw)


def get_rule(key: str) -> Rule:
    """The rule with this key (``alias:app_label.Model:name``), or ``RuleNotFound``."""
    parts = key.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise RuleNotFound(key)
    alias, label, _name = parts
    if alias not in connections:
        raise RuleNotFound(key)
    model = next((m for m in apps.get_models() if m._meta.label_lower == label.lower()), None)
    if model is None:
        raise RuleNotFound(key)
    for rule in rules_for_alias(alias, [model]):
        if rule.key == key:
            return rule
    raise RuleNotFound(key)
