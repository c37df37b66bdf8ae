"""Benchmark: merging a duplicate group with 100,000 references, through the app against hand-written SQL.

``python benchmarks/merge.py [--rows 100000] [--duplicates 2] [--background 100000] [--members 10000] [--repeat 5] [--profile]``

Creates a throwaway database on the configured PostgreSQL server (the
embedded one without ``DATABASE_URL``), migrates it and defines real models,
registered in the installed ``demo`` app, whose tables it creates:

- ``demo.BenchMember`` (``email``, ``name``): the merged model; its rule,
  ``email``, is configured with ``INTEGRITY_DUPLICATE_RULES``;
- ``demo.BenchOrder``: a foreign key to it (a reverse FK of the member);
- ``demo.BenchTag.members``: a many-to-many with its auto-created table
  (unique on the pair);
- ``demo.BenchTeam.members`` through ``demo.BenchMembership``: a custom
  through model with extra columns (``role``, ``joined``) and a
  ``UniqueConstraint`` on (member, team);
- ``demo.BenchNote``: a ``GenericForeignKey`` (contenttypes), indexed on
  (content type, object id);
- ``demo.BenchProfile``: a one-to-one.

The group is a survivor (pk 1) and ``--duplicates`` duplicates (pks 2, 3, …).
The duplicates are referenced by ``--rows`` rows spread evenly over the
foreign key, the two many-to-manys and the generic key (25,000 each by
default), each duplicate in turn. A one-to-one holds at most one row per
member, and re-pointing two of them to the survivor would break its unique
constraint, so exactly one duplicate has a profile (and the survivor none):
one more row, 100,001 rows moved in all. No re-pointed row collides with
another (distinct tags and teams), so no conflict has to be collapsed. Around
them: the survivor's own 100 rows in each relation, ``--members`` other
members with ``--background`` rows in each relation (and a profile each),
and 100 notes of another content type whose object ids are the duplicates'
pks (they must not move). Every table is loaded set-based
(``INSERT … SELECT generate_series``, in random physical order), then
``VACUUM ANALYZE`` and ``CHECKPOINT``.

Then, in interleaved rounds (which of the two goes first alternates), each on
freshly loaded data (truncate and reload, not timed), it times

(a) the app: ``integrity.merge.merge(rule, 1, [2, 3])``, the whole call (its
    lock, plan under lock, snapshots, re-pointing, checks, deletes and the
    ``MergeRecord`` holding every moved pk, and the commit), with the time
    between its ``step`` phases;
(b) hand-written SQL doing the same updates and deletes in one transaction:
    one ``UPDATE … SET fk = survivor WHERE fk = ANY(duplicates)`` per
    relation (the generic one filtered on the content type too), then
    ``DELETE`` of the duplicates.

After every run the script checks the end state: each table's rows, digest
of every column, equal the loaded rows with the duplicates' references mapped
to the survivor (so all 100,001 rows reference the survivor, the through
rows keep their role and joined date, the other content type's notes did
not move), the duplicates are gone and the survivor unchanged; for (a), the
record counts 100,001 moved rows and the deleted duplicates. (a) and (b)
end in the same state.

Target: (a) <= 1.5 x (b), medians of ``--repeat`` rounds. Exit code 0 when
met, 1 otherwise. A failing target, or ``--profile``, prints a breakdown of
one more run of (a): every statement with its time and rows (through
``connection.execute_wrapper``), the Python time left, and a cProfile. The
database is dropped at the end, also on error. The whole run takes about
1.5 minutes on 2 cores, nearly all of it the reloads (4 to 10 s each);
``--rows 10000 --background 10000 --members 1000`` for a quick run.
"""

# ruff: noqa: S608 - SQL is built only from our own models' table/column names and integers of ours

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.sequences import (  # noqa: E402  (after the sys.path set-up)
    in_throwaway_database,
    median,
    profile,
    server_version,
)

TARGET = 1.5  # (a) / (b)
SURVIVOR = 1
OWN = 100  # the survivor's own rows in each relation
STRANGERS = 100  # notes of another content type whose object ids are the duplicates' pks
PHASES = ("locked", "conflicts", "repointed", "deleted", "recorded", "committed")


# --------------------------------------------------------------------------
# The models and their data
# --------------------------------------------------------------------------


@dataclass
class Models:
    member: type[Any]
    order: type[Any]
    tag: type[Any]
    team: type[Any]
    membership: type[Any]
    note: type[Any]
    profile: type[Any]

    @property
    def tag_members(self) -> type[Any]:
        return self.tag._meta.get_field("members").remote_field.through

    def creation_order(self) -> list[type[Any]]:
        # The auto-created M2M table is created with BenchTag.
        return [self.member, self.order, self.tag, self.team, self.membership, self.note, self.profile]


def make_models() -> Models:
    from django.contrib.contenttypes.fields import GenericForeignKey
    from django.contrib.contenttypes.models import ContentType
    from django.db import models

    class BenchMember(models.Model):
        id = models.BigAutoField(primary_key=True)
        email = models.CharField(max_length=254)
        name = models.CharField(max_length=100)

        class Meta:
            app_label = "demo"
            db_table = "bench_member"

    class BenchOrder(models.Model):
        id = models.BigAutoField(primary_key=True)
        member = models.ForeignKey(BenchMember, on_delete=models.CASCADE, related_name="orders")
        amount = models.IntegerField()

        class Meta:
            app_label = "demo"
            db_table = "bench_order"

    class BenchTag(models.Model):
        id = models.BigAutoField(primary_key=True)
        name = models.CharField(max_length=50)
        members = models.ManyToManyField(BenchMember, related_name="tags", db_table="bench_tag_members")

        class Meta:
            app_label = "demo"
            db_table = "bench_tag"

    class BenchTeam(models.Model):
        id = models.BigAutoField(primary_key=True)
        name = models.CharField(max_length=50)
        members = models.ManyToManyField(BenchMember, through="BenchMembership", related_name="teams")

        class Meta:
            app_label = "demo"
            db_table = "bench_team"

    class BenchMembership(models.Model):
        id = models.BigAutoField(primary_key=True)
        member = models.ForeignKey(BenchMember, on_delete=models.CASCADE)
        team = models.ForeignKey(BenchTeam, on_delete=models.CASCADE)
        role = models.CharField(max_length=20)
        joined = models.DateField()

        class Meta:
            app_label = "demo"
            db_table = "bench_membership"
            constraints = [models.UniqueConstraint(fields=["member", "team"], name="bench_membership_once")]

    class BenchNote(models.Model):
        id = models.BigAutoField(primary_key=True)
        content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
        object_id = models.PositiveBigIntegerField()
        target = GenericForeignKey("content_type", "object_id")
        text = models.CharField(max_length=100)

        class Meta:
            app_label = "demo"
            db_table = "bench_note"
            indexes = [models.Index(fields=["content_type", "object_id"], name="bench_note_target")]

    class BenchProfile(models.Model):
        id = models.BigAutoField(primary_key=True)
        member = models.OneToOneField(BenchMember, on_delete=models.CASCADE, related_name="profile")
        bio = models.CharField(max_length=100)

        class Meta:
            app_label = "demo"
            db_table = "bench_profile"

    for cls in (BenchMember, BenchOrder, BenchTag, BenchTeam, BenchMembership, BenchNote, BenchProfile):
        cls.__module__ = __name__
    return Models(BenchMember, BenchOrder, BenchTag, BenchTeam, BenchMembership, BenchNote, BenchProfile)


@dataclass(frozen=True)
class Shape:
    rows: int  # rows referencing the duplicates, over FK, M2M, through, generic (+ 1 one-to-one)
    duplicates: int
    background: int  # rows per relation referencing the other members
    members: int  # other members

    @property
    def dups(self) -> list[int]:
        return list(range(SURVIVOR + 1, SURVIVOR + 1 + self.duplicates))

    @property
    def first_other(self) -> int:
        return SURVIVOR + self.duplicates + 1

    def per_relation(self) -> list[int]:
        """How many of ``rows`` each of the four many-row relations gets (FK, M2M, through, generic)."""
        base, rest = divmod(self.rows, 4)
        return [base + (1 if i < rest else 0) for i in range(4)]

    @property
    def moved(self) -> int:
        return self.rows + 1  # plus the one-to-one

    def others_per_member(self) -> int:
        return -(-self.background // self.members)


@dataclass(frozen=True)
class Names:
    """Tables and columns, from the models' _meta (quoted where used in SQL)."""

    member: str
    order: str
    tag: str
    tag_members: str
    tag_members_member: str
    tag_members_tag: str
    team: str
    membership: str
    note: str
    profile: str
    member_ct: int
    tag_ct: int


def names_of(m: Models) -> Names:
    from django.contrib.contenttypes.models import ContentType

    through = m.tag_members
    return Names(
        member=m.member._meta.db_table,
        order=m.order._meta.db_table,
        tag=m.tag._meta.db_table,
        tag_members=through._meta.db_table,
        tag_members_member=through._meta.get_field("benchmember").column,
        tag_members_tag=through._meta.get_field("benchtag").column,
        team=m.team._meta.db_table,
        membership=m.membership._meta.db_table,
        note=m.note._meta.db_table,
        profile=m.profile._meta.db_table,
        member_ct=ContentType.objects.get_for_model(m.member).pk,
        tag_ct=ContentType.objects.get_for_model(m.tag).pk,
    )


def load_sql(n: Names, shape: Shape) -> list[str]:
    """Set-based statements that fill every table (random physical order in each child table)."""
    fk, m2m, through, generic = shape.per_relation()
    d, first, members, bg = shape.duplicates, shape.first_other, shape.members, shape.background
    # Tags and teams: the duplicates' rows each have their own, then the survivor's,
    # then the other members' (k-th row of a member -> k-th tag): no pair repeats.
    tags = max(m2m, through) + OWN + shape.others_per_member()
    dup = SURVIVOR + 1
    # Row g of the many-row relations: first the duplicates' (g < R), then the survivor's, then the others'.
    owner = (
        f"CASE WHEN g < {{r}} THEN {dup} + g % {d} WHEN g < {{r}} + {OWN} THEN {SURVIVOR} "
        f"ELSE {first} + (g - {{r}} - {OWN}) % {members} END"
    )
    slot = (
        f"CASE WHEN g < {{r}} + {OWN} THEN 1 + g ELSE 1 + {{r}} + {OWN} + (g - {{r}} - {OWN}) / {members} END"
    )
    total = "{r} + " + f"{OWN + bg} - 1"

    def rows(r: int) -> tuple[str, str, str]:
        return owner.format(r=r), slot.format(r=r), total.format(r=r)

    o_owner, _o_slot, o_total = rows(fk)
    t_owner, t_slot, t_total = rows(m2m)
    h_owner, h_slot, h_total = rows(through)
    g_owner, _g_slot, g_total = rows(generic)
    return [
        f"INSERT INTO {n.member} (id, email, name) SELECT i, 'dup@example.com', 'Member ' || i "
        f"FROM generate_series({SURVIVOR}, {SURVIVOR + d}) AS i",
        f"INSERT INTO {n.member} (id, email, name) SELECT i, 'm' || i || '@example.com', 'Member ' || i "
        f"FROM generate_series({first}, {first + members - 1}) AS i",
        f"SELECT setval(pg_get_serial_sequence('{n.member}', 'id'), {first + members - 1})",
        f"INSERT INTO {n.tag} (id, name) SELECT i, 'tag ' || i FROM generate_series(1, {tags}) AS i",
        f"INSERT INTO {n.team} (id, name) SELECT i, 'team ' || i FROM generate_series(1, {tags}) AS i",
        f"INSERT INTO {n.order} (member_id, amount) SELECT {o_owner}, g % 1000 "
        f"FROM generate_series(0, {o_total}) AS g ORDER BY random()",
        f"INSERT INTO {n.tag_members} ({n.tag_members_member}, {n.tag_members_tag}) SELECT {t_owner}, {t_slot} "
        f"FROM generate_series(0, {t_total}) AS g ORDER BY random()",
        f"INSERT INTO {n.membership} (member_id, team_id, role, joined) SELECT {h_owner}, {h_slot}, "
        "(ARRAY['owner', 'admin', 'member'])[1 + g % 3], date '2020-01-01' + g % 1500 "
        f"FROM generate_series(0, {h_total}) AS g ORDER BY random()",
        f"INSERT INTO {n.note} (content_type_id, object_id, text) SELECT ct, obj, 'note ' || g FROM ("
        f"SELECT g, {n.member_ct} AS ct, {g_owner} AS obj FROM generate_series(0, {g_total}) AS g "
        f"UNION ALL SELECT -g, {n.tag_ct}, {dup} + g % {d} FROM generate_series(1, {STRANGERS}) AS g"
        ") AS s ORDER BY random()",
        f"INSERT INTO {n.profile} (member_id, bio) SELECT i, 'bio ' || i FROM ("
        f"SELECT {dup} AS i UNION ALL SELECT generate_series({first}, {first + members - 1})) AS s "
        "ORDER BY random()",
    ]


def reload(m: Models, n: Names, shape: Shape) -> float:
    """Empty every table and load the data again (not timed); seconds taken."""
    from django.db import connection, transaction

    from integrity.models import MergeRecord

    start = time.perf_counter()
    tables = [n.member, n.order, n.tag, n.tag_members, n.team, n.membership, n.note, n.profile]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)}, {MergeRecord._meta.db_table} RESTART IDENTITY CASCADE")
        cursor.execute("SELECT setseed(0.42)")
        for statement in load_sql(n, shape):
            cursor.execute(statement)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {', '.join(tables)}")
        try:
            cursor.execute("CHECKPOINT")  # a checkpoint of the load must not land in a timed run
        except Exception:  # noqa: BLE001 - not a superuser: the load's dirty pages stay
            pass
    return time.perf_counter() - start


# --------------------------------------------------------------------------
# End state
# --------------------------------------------------------------------------


def _fingerprints_sql(n: Names) -> dict[str, str]:
    """Per table: row count and digest of every column, the duplicates' references mapped to the survivor."""

    def ref(column: str, ct: bool = False) -> str:
        cond = f"{column} = ANY(%(dups)s)" + (f" AND content_type_id = {n.member_ct}" if ct else "")
        return f"CASE WHEN {cond} THEN %(survivor)s ELSE {column} END"

    cols = {
        n.order: ["id", ref("member_id"), "amount"],
        n.tag_members: ["id", ref(n.tag_members_member), n.tag_members_tag],
        n.membership: ["id", ref("member_id"), "team_id", "role", "joined"],
        n.note: ["id", "content_type_id", ref("object_id", ct=True), "text"],
        n.profile: ["id", ref("member_id"), "bio"],
    }
    out = {
        table: f"SELECT COUNT(*), md5(string_agg(concat_ws('|', {', '.join(c)}), ',' ORDER BY id)) FROM {table}"
        for table, c in cols.items()
    }
    out[n.member] = (
        "SELECT COUNT(*), md5(string_agg(concat_ws('|', id, email, name), ',' ORDER BY id)) "
        f"FROM {n.member} WHERE id <> ALL(%(dups)s)"
    )
    return out


def fingerprints(n: Names, shape: Shape) -> dict[str, tuple[int, str]]:
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        for table, sql in _fingerprints_sql(n).items():
            cursor.execute(sql, {"dups": shape.dups, "survivor": SURVIVOR})
            count, digest = cursor.fetchone()
            out[table] = (int(count), str(digest))
    return out


def references(n: Names, shape: Shape) -> dict[str, tuple[int, int]]:
    """Per relation: rows referencing the survivor, rows referencing a duplicate."""
    from django.db import connection

    queries = {
        "FK": (n.order, "member_id", ""),
        "M2M": (n.tag_members, n.tag_members_member, ""),
        "through": (n.membership, "member_id", ""),
        "generic": (n.note, "object_id", f" AND content_type_id = {n.member_ct}"),
        "one-to-one": (n.profile, "member_id", ""),
    }
    out = {}
    with connection.cursor() as cursor:
        for label, (table, column, extra) in queries.items():
            cursor.execute(
                f"SELECT COUNT(*) FILTER (WHERE {column} = %(s)s), COUNT(*) FILTER (WHERE {column} = ANY(%(d)s)) "
                f"FROM {table} WHERE {column} = ANY(%(all)s){extra}",
                {"s": SURVIVOR, "d": shape.dups, "all": [SURVIVOR, *shape.dups]},
            )
            survivor, dups = cursor.fetchone()
            out[label] = (int(survivor), int(dups))
    return out


def expected_references(shape: Shape) -> dict[str, tuple[int, int]]:
    fk, m2m, through, generic = shape.per_relation()
    return {
        "FK": (fk + OWN, 0),
        "M2M": (m2m + OWN, 0),
        "through": (through + OWN, 0),
        "generic": (generic + OWN, 0),
        "one-to-one": (1, 0),
    }


def check_end_state(
    what: str, n: Names, shape: Shape, expected: dict[str, tuple[int, str]]
) -> dict[str, tuple[int, str]]:
    from django.db import connection

    refs = references(n, shape)
    assert refs == expected_references(shape), f"{what}: references {refs}"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {n.member} WHERE id = ANY(%s) ORDER BY id", [[SURVIVOR, *shape.dups]])
        left = [row[0] for row in cursor.fetchall()]
    assert left == [SURVIVOR], f"{what}: members left of the group: {left}"
    now = fingerprints(n, shape)
    diff = {t: (expected[t], now[t]) for t in expected if expected[t] != now[t]}
    assert not diff, f"{what}: tables differ from the expected end state: {diff}"
    return now


# --------------------------------------------------------------------------
# (a) the app, (b) hand-written SQL
# --------------------------------------------------------------------------


def app_merge(rule: Any, shape: Shape, phases: dict[str, float] | None = None) -> Any:
    from integrity.merge import merge

    marks = [time.perf_counter()]

    def step(_name: str) -> None:
        marks.append(time.perf_counter())

    record = merge(rule, SURVIVOR, shape.dups, step=step)
    marks.append(time.perf_counter())
    if phases is not None:
        for name, a, b in zip(PHASES, marks[:-1], marks[1:], strict=True):
            phases[name] = (b - a) * 1000
    return record


def hand_sql(n: Names) -> list[str]:
    set_to = "= %(survivor)s"
    where = "= ANY(%(dups)s)"
    return [
        f"UPDATE {n.order} SET member_id {set_to} WHERE member_id {where}",
        f"UPDATE {n.tag_members} SET {n.tag_members_member} {set_to} WHERE {n.tag_members_member} {where}",
        f"UPDATE {n.membership} SET member_id {set_to} WHERE member_id {where}",
        f"UPDATE {n.note} SET object_id {set_to} WHERE content_type_id = {n.member_ct} AND object_id {where}",
        f"UPDATE {n.profile} SET member_id {set_to} WHERE member_id {where}",
        f"DELETE FROM {n.member} WHERE id {where}",
    ]


def hand_merge(n: Names, shape: Shape, marks: list[float] | None = None) -> int:
    from django.db import connection, transaction

    moved = 0
    statements = hand_sql(n)
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, {"survivor": SURVIVOR, "dups": shape.dups})
            moved += cursor.rowcount
        if marks is not None:
            marks.append(time.perf_counter())  # what follows is the COMMIT
    return moved - shape.duplicates


def check_record(record: Any, shape: Shape) -> None:
    assert record.repointed == shape.moved, record.repointed
    assert record.deleted == shape.duplicates, record.deleted
    assert record.removed == [str(pk) for pk in shape.dups], record.removed
    moved = sum(m["count"] for m in record.data["moved"])
    assert moved == shape.moved, moved


# --------------------------------------------------------------------------
# Breakdown
# --------------------------------------------------------------------------


@dataclass
class Statement:
    sql: str
    ms: float
    rows: int


@contextmanager
def statements() -> Iterator[list[Statement]]:
    """Every statement run on the connection, with its time (execute + fetch of the result) and row count."""
    from django.db import connection

    found: list[Statement] = []

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
    ) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            cursor = context["cursor"]
            found.append(Statement(sql, (time.perf_counter() - start) * 1000, int(cursor.rowcount)))

    with connection.execute_wrapper(wrapper):
        yield found


def shorten(sql: str, width: int = 150) -> str:
    one = " ".join(sql.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def _print_statements(label: str, found: list[Statement], total: float, commit: float) -> None:
    sql_ms = sum(s.ms for s in found)
    print(f"\n--- {label} statement by statement: {len(found)} statements, {total:.0f} ms ---")
    print(f"{'ms':>8} {'rows':>7}  statement")
    for s in found:
        print(f"{s.ms:8.1f} {s.rows:7d}  {shorten(s.sql)}")
    print(f"{sql_ms:8.1f} {'':7}  all statements (execute + fetch of the result)")
    print(f"{commit:8.1f} {'':7}  COMMIT")
    print(
        f"{total - sql_ms - commit:8.1f} {'':7}  Python (building statements, the plan, the record's JSON, …)"
    )


def breakdown(rule: Any, m: Models, n: Names, shape: Shape) -> None:
    """One more run of (a) and of (b), statement by statement, then a cProfile of (a)."""
    reload(m, n, shape)
    phases: dict[str, float] = {}
    start = time.perf_counter()
    with statements() as found:
        app_merge(rule, shape, phases)
    _print_statements("(a)", found, (time.perf_counter() - start) * 1000, phases["committed"])
    reload(m, n, shape)
    marks: list[float] = []
    start = time.perf_counter()
    with statements() as found:
        hand_merge(n, shape, marks)
    end = time.perf_counter()
    _print_statements("(b)", found, (end - start) * 1000, (end - marks[0]) * 1000)
    reload(m, n, shape)
    profile("(a) app merge", lambda: app_merge(rule, shape), lines=20)


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


@dataclass
class Contender:
    name: str
    run: Callable[[], Any]
    check: Callable[[Any], None]
    times: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)


def benchmark(args: argparse.Namespace) -> bool:
    from django.apps import apps
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from integrity.duplicates.rules import get_rule

    shape = Shape(args.rows, args.duplicates, args.background, args.members)
    assert shape.duplicates >= 1 and shape.rows >= 4 and shape.members >= 1
    t0 = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    migrate = time.perf_counter() - t0
    models = make_models()
    apps.clear_cache()
    with connection.schema_editor() as editor:
        for model in models.creation_order():
            editor.create_model(model)
    names = names_of(models)
    load = reload(models, names, shape)
    fk, m2m, through, generic = shape.per_relation()
    print(f"set-up: migrate {migrate:.1f}s, load {load:.1f}s (each round reloads twice, not timed)")
    print(
        f"group: survivor {SURVIVOR}, duplicates {shape.dups}; rows moved: FK {fk:,}, M2M {m2m:,}, "
        f"through {through:,}, generic {generic:,}, one-to-one 1 = {shape.moved:,}; "
        f"background: {shape.members:,} members, {shape.background:,} rows per relation"
    )

    rules_setting = [{"model": "demo.BenchMember", "fields": ["email"], "name": "email"}]
    with override_settings(INTEGRITY_DUPLICATE_RULES=rules_setting):
        rule = get_rule("default:demo.BenchMember:configured:email")
        state: dict[str, Any] = {}

        def run_app() -> Any:
            phases: dict[str, float] = {}
            record = app_merge(rule, shape, phases)
            app.phases.append(phases)
            return record

        def check_app(record: Any) -> None:
            check_record(record, shape)
            state["app"] = check_end_state("(a) app", names, shape, state["expected"])

        def check_hand(moved: int) -> None:
            assert moved == shape.moved, moved
            state["hand"] = check_end_state("(b) hand-written SQL", names, shape, state["expected"])

        app = Contender("(a) app: integrity.merge.merge(rule, 1, dups)", run_app, check_app)

        def run_hand() -> int:
            marks = [time.perf_counter()]
            moved = hand_merge(names, shape, marks)
            marks.append(time.perf_counter())
            hand.phases.append(
                {"statements": (marks[1] - marks[0]) * 1000, "committed": (marks[2] - marks[1]) * 1000}
            )
            return moved

        hand = Contender("(b) hand-written UPDATE per relation + DELETE", run_hand, check_hand)

        def one(c: Contender) -> float:
            reload(models, names, shape)
            state["expected"] = fingerprints(names, shape)
            start = time.perf_counter()
            result = c.run()
            ms = (time.perf_counter() - start) * 1000
            c.check(result)
            return ms

        for c in (app, hand):  # warm-up (not counted), checked like every run
            one(c)
        app.phases.clear()
        hand.phases.clear()
        assert state["app"] == state["hand"], "(a) and (b) end in different states"
        for i in range(args.repeat):
            for c in (app, hand) if i % 2 == 0 else (hand, app):
                c.times.append(one(c))
            assert state["app"] == state["hand"], "(a) and (b) end in different states"

        version = server_version()
        a_ms, b_ms = median(app.times), median(hand.times)
        ratio = a_ms / b_ms
        print(
            f"\nPostgreSQL {version // 10000}.{version % 10000}, median of {args.repeat} interleaved rounds, "
            "fresh data each run; end state checked after each run, (a) = (b)"
        )
        print(f"{'':50}{'median ms':>10}  {'min ms':>8}  {'max ms':>8}")
        for c in (app, hand):
            print(f"{c.name:50}{median(c.times):10.1f}  {min(c.times):8.1f}  {max(c.times):8.1f}")
        print(
            "\n(a) by phase (median ms): "
            + ", ".join(f"{p} {median([ph[p] for ph in app.phases]):.0f}" for p in PHASES)
        )
        print(
            "(b) by phase (median ms): "
            + ", ".join(
                f"{p} {median([ph[p] for ph in hand.phases]):.0f}" for p in ("statements", "committed")
            )
        )
        print(
            "  (a: locked: lock rows + tables; conflicts: the plan under lock + conflict deletes; "
            "repointed: the UPDATEs; deleted: checks + snapshot + DELETE; recorded: survivor + MergeRecord)"
        )
        passed = ratio <= TARGET
        print(f"\nmerge a/b {ratio:5.2f}x  (target <= {TARGET}x)  {'PASS' if passed else 'FAIL'}")
        if args.profile or not passed:
            breakdown(rule, models, names, shape)
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=100_000, help="rows referencing the duplicates (default 100,000)"
    )
    parser.add_argument(
        "--duplicates", type=int, default=2, help="duplicates merged into the survivor (default 2)"
    )
    parser.add_argument(
        "--background", type=int, default=100_000, help="other members' rows per relation (default 100,000)"
    )
    parser.add_argument("--members", type=int, default=10_000, help="other members (default 10,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds, interleaved (default 5)")
    parser.add_argument(
        "--profile", action="store_true", help="statement breakdown and cProfile even when passing"
    )
    args = parser.parse_args(argv)

    return in_throwaway_database("merge_", lambda: benchmark(args))


if __name__ == "__main__":
    sys.exit(main())
