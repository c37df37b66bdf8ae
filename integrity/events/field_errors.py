"""``field_errors(exc)``: a unique violation as the form errors Django's own validation would have given.

A form's ``validate_unique()`` checks before the insert; two requests at once
both pass it and the second insert fails with an IntegrityError. This turns
that error into ``{field: [message]}`` from the rule the violated constraint
enforces, with the messages the model declares (a field's
``error_messages["unique"]``, a ``UniqueConstraint``'s
``violation_error_message``), keyed as ``Model.validate_constraints()`` keys
them: a one-field rule under its field, anything else under
``NON_FIELD_ERRORS``. So a view can answer the race with a 400 and the form
the user filled, instead of a 500.

It reads the driver's exception and ``_meta`` (``violations.parse``); only
when ``_meta`` cannot name the rule (an index named by hand) and the
connection is usable does it read the catalogs. It never raises: an error it
cannot map is ``{}``, and the caller re-raises it.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DatabaseError
from django.db.models import Model, UniqueConstraint

from integrity.duplicates.rules import CONSTRAINT, FIELD, Rule, rules_for_alias
from integrity.events import violations
from integrity.events.recording import alias_of

__all__ = ["field_errors"]


def field_errors(
    exc: BaseException,
    *,
    using: str | None = None,
    instance: Model | None = None,
    non_field_key: str = NON_FIELD_ERRORS,
) -> dict[str, list[str]]:
    """``{field name: [message, ...]}`` for a unique violation; ``{}`` for any other error.

    ``using`` names the database when the error can't tell it; ``instance``
    is the object being saved (its model's ``unique_error_message`` is used,
    as in ``validate_unique()``); ``non_field_key`` is where errors of
    several fields go (``"non_field_errors"`` for Django REST framework).
    """
    try:
        alias = using or alias_of(exc)
        violation = violations.resolve(violations.parse(exc, alias), alias)
    except (DatabaseError, LookupError, ValueError):
        return {}
    if violation.kind != violations.UNIQUE or not violation.model:
        return {}
    model = apps.get_model(violation.model)
    rule = _rule(alias, model, violation.rule)
    if rule is not None:
        field, error = _rule_error(rule, instance or model())
    elif (
        violation.fields
    ):  # the primary key, or an index no rule of _meta declares but whose columns are fields
        names = violation.fields
        field, error = (names[0] if len(names) == 1 else None), _unique(instance or model(), model, names)
    else:
        return {}
    return {field or non_field_key: [str(m) for m in error.messages]}


def _rule(alias: str, model: type[Model], key: str | None) -> Rule | None:
    return next((r for r in rules_for_alias(alias, [model]) if key and r.key == key), None)


def _unique(instance: Model, model: type[Model], names: tuple[str, ...]) -> ValidationError:
    # The instance's own method: a model may override it, as validate_unique() would call it.
    return instance.unique_error_message(model, names)


def _rule_error(rule: Rule, instance: Model) -> tuple[str | None, ValidationError]:
    """The field (``None``: not one field) and the error ``Model.validate_constraints()`` would give."""
    constraint = rule.constraint
    one_field = rule.fields[0] if len(rule.fields) == 1 and not rule.expressions else None
    if not isinstance(constraint, UniqueConstraint):  # unique=True (FIELD) or unique_together
        return (one_field if rule.kind == FIELD else None), _unique(instance, rule.model, rule.fields)
    assert rule.kind == CONSTRAINT
    custom = constraint.violation_error_message != constraint.default_violation_error_message
    if rule.fields and not custom and constraint.condition is None:
        # As UniqueConstraint.validate(): the model's message for those fields (code "unique" for one).
        return one_field, _unique(instance, rule.model, rule.fields)
    code: Any = constraint.violation_error_code
    error = ValidationError(constraint.get_violation_error_message(), code=code)
    return (one_field if code == "unique" else None), error
