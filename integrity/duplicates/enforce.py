"""The Enforce action's plan: the SQL that makes the database enforce a rule, or why it can't be done here.

For a declared rule that is ``missing`` by drift or ``invalid``, the plan is
what Django's schema editor generates for the rule (its name and definition,
so later migrations find it), turned into ``CREATE UNIQUE INDEX CONCURRENTLY``
(writes go on), then ``ALTER TABLE … ADD CONSTRAINT … USING INDEX`` where
Django would have created a constraint; an invalid leftover is dropped first
(concurrently). A rule whose migration is not applied gets the ``migrate``
command, a configured rule the model ``Meta`` code that declares it. Anything
else is refused with its reason. Nothing here changes the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import F, Func, Value
from django.utils.translation import gettext as _

from integrity import reads
from integrity.db import qualified, quote, quote_table
from integrity.duplicates import enforcement, indexes
from integrity.duplicates.enforcement import Enforcement
from integrity.duplicates.rules import CONSTRAINT, FIELD, TOGETHER, Rule

BUILD, MIGRATE, CONFIGURE, ENFORCED, REFUSED = "build", "migrate", "configure", "enforced", "refused"
PG_NAME_MAX = 63
INDEX_PREFIX = "CREATE UNIQUE INDEX "  # how Django's sql_create_unique_index starts


@dataclass
class Plan:
    """What Enforce would do for one rule (``action``), and the SQL or the command it takes."""

    rule: Rule
    enforcement: Enforcement
    action: str
    reason: str = ""
    schema: str = ""
    index: str = ""  # the name Django gives the rule's index or constraint
    drop_invalid: str | None = None  # the invalid leftover dropped first
    create_index: str = ""
    add_constraint: str = ""  # "" where Django creates a plain unique index
    migrate_command: str = ""
    meta_code: str = ""

    @property
    def index_regclass(self) -> str:
        return qualified(self.schema, self.index)

    @property
    def drop_statement(self) -> str:
        assert self.drop_invalid is not None
        return f"DROP INDEX CONCURRENTLY IF EXISTS {qualified(self.schema, self.drop_invalid)}"

    @property
    def statements(self) -> list[str]:
        """Every statement the build runs, in order."""
        found = [self.drop_statement] if self.drop_invalid else []
        found.append(self.create_index)
        return [*found, self.add_constraint] if self.add_constraint else found

    @property
    def sql(self) -> str:
        return "".join(f"{s};\n" for s in self.statements) if self.action == BUILD else ""

    @property
    def token(self) -> str:
        """Ties a confirmation to the SQL it showed: a POST whose plan has changed since is refused."""
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def offered(rule: Rule, state: Enforcement) -> bool:
    """Could Enforce do something for this rule (no database access: the page still has to find no groups)?"""
    if state.state == enforcement.CONFIGURED_STATE:
        return state.table_exists
    if state.state not in enforcement.DECLARED_NOT_ENFORCED or state.busy:
        return False
    return bool(state.migration) or (state.table_exists and rule.model._meta.managed)


def plan_for(rule: Rule, state: Enforcement | None = None) -> Plan:
    """The plan for ``rule`` (its enforcement read now unless given); catalog reads only, bounded."""
    state = state or enforcement.classify([rule])[rule.key]
    if state.state == enforcement.ENFORCED:
        return Plan(
            rule,
            state,
            ENFORCED,
            _("The database enforces it already (index %(index)s).") % {"index": state.index},
        )
    if state.state == enforcement.CONFIGURED_STATE:
        return Plan(rule, state, CONFIGURE, meta_code=meta_code(rule), reason=configure_hint(rule))
    if state.state not in enforcement.DECLARED_NOT_ENFORCED:
        return Plan(rule, state, REFUSED, state.reason)
    if state.migration:
        return Plan(rule, state, MIGRATE, migrate_command=migrate_command(rule, state.migration))
    if state.busy or not state.table_exists or not rule.model._meta.managed:
        return Plan(rule, state, REFUSED, state.reason)
    return _build_plan(rule, state)


def _build_plan(rule: Rule, state: Enforcement) -> Plan:
    statement, name = _django_statement(rule)
    if statement is None:
        return Plan(rule, state, REFUSED, _("Django creates no unique index for this rule on PostgreSQL."))
    editor_quote = connections[rule.database].ops.quote_name
    names = [name, *rule.columns]
    if any(editor_quote(n) != quote(n) for n in names) or quote_table(rule.model._meta.db_table) != str(
        statement.parts["table"]
    ):
        reason = _(
            "A name of this rule holds a double quote, which Django's SQL would not escape: build it by hand."
        )
        return Plan(rule, state, REFUSED, reason)
    with reads.bounded(rule.database), connections[rule.database].cursor() as cursor:
        schema = indexes.schema_of(cursor, rule.model._meta.db_table)
        taken = schema is not None and name != state.index and indexes.relation_exists(cursor, schema, name)
    if schema is None:
        return Plan(rule, state, REFUSED, _("The table does not exist on this database."))
    if taken:
        reason = _("Another relation is already named %(name)s: Django's name for this rule is taken.")
        return Plan(rule, state, REFUSED, reason % {"name": name})
    plan = Plan(rule, state, BUILD, schema=schema, index=name)
    plan.drop_invalid = state.index if state.state == enforcement.INVALID else None
    plan.create_index, plan.add_constraint = _build_statements(statement)
    return plan


def _django_statement(rule: Rule) -> tuple[Any, str]:
    """Django's own statement for the rule (as a migration would run it) and the name it gives it."""
    model = rule.model
    editor: Any  # Django's private helpers below are what its migrations call, so they name it the same
    with connections[rule.database].schema_editor(collect_sql=True, atomic=False) as editor:
        if rule.kind == CONSTRAINT:
            assert rule.constraint is not None
            return rule.constraint.create_sql(model, editor), rule.constraint.name
        if rule.kind in (FIELD, TOGETHER):
            fields = [model._meta.get_field(name) for name in rule.fields]
            name = editor._create_index_name(model._meta.db_table, rule.columns, suffix="_uniq")
            return editor._create_unique_sql(model, fields), name
    raise AssertionError(rule.kind)


def _build_statements(statement: Any) -> tuple[str, str]:
    """``(CREATE UNIQUE INDEX CONCURRENTLY …, ALTER TABLE … USING INDEX … or "")`` from Django's statement."""
    text = str(statement)
    if text.startswith(INDEX_PREFIX):  # an index (expressions, condition, include, opclasses)
        return "CREATE UNIQUE INDEX CONCURRENTLY " + text[len(INDEX_PREFIX) :], ""
    parts = statement.parts
    table, name, columns = str(parts["table"]), str(parts["name"]), str(parts["columns"])
    create = f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON {table} ({columns}){parts['nulls_distinct']}"
    attach = f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}{parts['deferrable']}"
    return create, attach


def migrate_command(rule: Rule, migration: str) -> str:
    """``python manage.py migrate app_label name`` (and ``--database``) for ``app_label.name``."""
    app_label, name = migration.split(".", 1)
    database = "" if rule.database == "default" else f" --database {rule.database}"
    return f"python manage.py migrate {app_label} {name}{database}"


def _code(expression: Any, top: bool = True) -> str:
    if isinstance(expression, F):
        name = str(getattr(expression, "name", expression))
        return f'F("{name}")' if top else f'"{name}"'
    if isinstance(expression, Value):
        return f"Value({expression.value!r})"
    if isinstance(expression, Func):
        inner = ", ".join(_code(e, top=False) for e in expression.get_source_expressions())
        return f"{type(expression).__name__}({inner})"
    return repr(expression)


def _functions(expression: Any) -> set[str]:
    if isinstance(expression, Func):
        found = {type(expression).__name__}
        for e in expression.get_source_expressions():
            found |= _functions(e)
        return found
    return set()


def constraint_name(rule: Rule) -> str:
    """A name for the configured rule's constraint: ``<table>_<fields>[_ci]_uniq``, within PostgreSQL's 63."""
    suffix = ("_ci" if rule.expressions else "") + "_uniq"
    base = f"{rule.model._meta.db_table}_{'_'.join(rule.columns)}"
    return base[: PG_NAME_MAX - len(suffix)] + suffix


def meta_code(rule: Rule) -> str:
    """The model ``Meta`` code that declares a configured rule, ready to paste."""
    if rule.expressions:
        args = ", ".join(_code(e) for e in rule.expressions)
    else:
        args = "fields=[" + ", ".join(f'"{c}"' for c in rule.fields) + "]"
    extra = "" if rule.nulls_distinct else ", nulls_distinct=False"
    functions = sorted(set().union(*(_functions(e) for e in rule.expressions)))
    imports = ["from django.db import models"]
    if functions:
        imports.append(f"from django.db.models.functions import {', '.join(functions)}")
    return (
        "\n".join(imports)
        + f"\n\n\nclass {rule.model.__name__}(models.Model):\n    ...\n\n    class Meta:\n"
        + "        constraints = [\n"
        + f'            models.UniqueConstraint({args}, name="{constraint_name(rule)}"{extra}),\n'
        + "        ]\n"
    )


def configure_hint(rule: Rule) -> str:
    return _(
        "Add the constraint to the Meta of %(model)s (with any constraints it has already), remove the rule "
        "from INTEGRITY_DUPLICATE_RULES, then run: python manage.py makemigrations %(app)s && "
        "python manage.py migrate %(app)s"
    ) % {"model": rule.label, "app": rule.app_label}
