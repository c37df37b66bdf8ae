"""The rows installs hold before the unique rule: duplicates under Lower(email), referenced every way."""

from __future__ import annotations

from typing import Any

CUSTOMERS = [
    (1, "ada@example.com", "Ada"),
    (2, "Ada@Example.com", "Ada L."),
    (3, "bob@example.com", "Bob"),
    (4, "bob@example.com", "Bob"),
    (5, "BOB@example.com", "Robert"),
    (6, "cy@example.com", "Cy"),
]
ORDERS = [(1, 1), (2, 2), (3, 2), (4, 4), (5, 5)]  # (order id, customer id)
# Two identical memberships of the same club collapse into the survivor's.
MEMBERSHIPS = [(1, 1, "chess", "member"), (2, 2, "chess", "member"), (3, 4, "go", "member")]
# The same club with different roles: which one to keep is a human choice.
CONFLICTING = [(4, 3, "chess", "captain"), (5, 4, "chess", "member")]
NOTES = [(1, 2, "called"), (2, 5, "moved")]  # (note id, customer id, text): generic references


def load(apps: Any, schema_editor: Any, conflicting: bool = False) -> None:
    """The duplicates, with explicit ids so that tests can name them; the sequences are resynced after."""
    alias = schema_editor.connection.alias
    model = {name: apps.get_model("dedupe", name) for name in ("Customer", "Order", "Membership", "Note")}
    content_type = apps.get_model("contenttypes", "ContentType")
    ct, _ = content_type.objects.using(alias).get_or_create(app_label="dedupe", model="customer")
    model["Customer"].objects.using(alias).bulk_create(
        model["Customer"](id=i, email=e, name=n) for i, e, n in CUSTOMERS
    )
    model["Order"].objects.using(alias).bulk_create(
        model["Order"](id=i, customer_id=c, number=f"N{i}") for i, c in ORDERS
    )
    memberships = MEMBERSHIPS + (CONFLICTING if conflicting else [])
    model["Membership"].objects.using(alias).bulk_create(
        model["Membership"](id=i, customer_id=c, club=club, role=role) for i, c, club, role in memberships
    )
    model["Note"].objects.using(alias).bulk_create(
        model["Note"](id=i, content_type_id=ct.pk, object_id=c, text=t) for i, c, t in NOTES
    )


def load_conflicting(apps: Any, schema_editor: Any) -> None:
    load(apps, schema_editor, conflicting=True)
