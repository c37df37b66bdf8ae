"""Primary keys from requests and the command line: checked once, here, before any query sees them."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model
from django.utils.translation import gettext as _


class BadValue(ValueError):
    """Not a value the column can hold; ``str()`` says why."""


def pk_value(model: type[Model], raw: Any) -> Any:
    """``raw`` as a primary key of ``model``, or ``BadValue``: not of its type, too large for it, a NUL byte.

    The field's own validators decide the range (an integer column's limits,
    a CharField's max_length), so a value the database would refuse, or
    compare as never equal, is refused up front.
    """
    pk_field: Any = model._meta.pk
    shown = str(raw)[:100] + ("…" if len(str(raw)) > 100 else "")
    message = _("%(pk)r is not a valid primary key of %(model)s.") % {"pk": shown, "model": model._meta.label}
    if isinstance(raw, str) and "\x00" in raw:
        raise BadValue(message)
    try:
        value = pk_field.to_python(raw)
        if value is None or value == "":
            raise BadValue(message)
        pk_field.run_validators(value)
    except (ValidationError, TypeError, ValueError, OverflowError):
        raise BadValue(message) from None
    return value
