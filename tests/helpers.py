"""What the tests share: sequence state, users and clients, page parsing, events, browsers, merges, threads.

Plain functions and constants (and the one autouse fixture ``clean_sequences``, which a module
turns on by importing it); test modules import from here, never from each other.
"""

from __future__ import annotations

import html
import http.client
import io
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Model
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from demo.clinic.models import Doctor
from demo.helpdesk.models import Ticket
from demo.metrics.models import ArchivedEntry, Entry, Invoice, LegacyCounter, Reading
from demo.shop.models import Coupon, Product, Tag
from integrity import merge, sequences
from integrity.duplicates.rules import Rule
from integrity.events import recording as events
from integrity.events import violations
from integrity.events.violations import Violation
from integrity.merge import plan as merge_plan
from integrity.models import Event, EventGroup, MergeRecord, SequenceResync
from integrity.sequences import SequenceInfo
from tests.merging import models as merging

# ---------------------------------------------------------------------------
# Users and clients (one make_user, one client_for; a test module may bind its own role table)
# ---------------------------------------------------------------------------

ROLES = ("anonymous", "non_staff", "staff", "viewer", "resyncer", "superuser")
# The roles of the sequences pages' tests; other pages bind theirs (functools.partial(client_for, roles=...)).
ROLE_PERMS = {
    "viewer": ["view_sequence"],
    "resyncer": ["view_sequence", "resync_sequence"],
    "auditor": ["view_sequenceresync"],
}


def make_user(
    role: str,
    codenames: list[str] | None = None,
    *,
    username: str | None = None,
    roles: dict[str, list[str]] = ROLE_PERMS,
) -> User:
    """A user of ``role``: a superuser, or a (non-)staff user with the permissions ``codenames`` (each unique).

    Without ``codenames`` the role's own (``roles``) apply; "staff" and "non_staff" have none.
    """
    name = username or role
    if role == "superuser":
        return User.objects.create_superuser(name, f"{name}@example.com", "pw")
    user = User.objects.create_user(name, f"{name}@example.com", "pw", is_staff=role != "non_staff")
    wanted = roles.get(role, []) if codenames is None else codenames
    user.user_permissions.set(Permission.objects.filter(codename__in=wanted))
    assert user.user_permissions.count() == len(wanted)
    return user


def client_for(
    role: str, codenames: list[str] | None = None, *, roles: dict[str, list[str]] = ROLE_PERMS, **kwargs: Any
) -> Client:
    """A test client logged in as a new user of ``role`` (anonymous: not logged in); ``kwargs`` go to ``Client``."""
    client = Client(**kwargs)
    if role != "anonymous":
        client.force_login(make_user(role, codenames, roles=roles))
    return client


# ---------------------------------------------------------------------------
# Sequences: their state, read and written with plain SQL; reading pages
# ---------------------------------------------------------------------------


DB = pytest.mark.django_db(databases="__all__")


PG_ALIASES = ("default", "other")


LIST = "/admin/integrity/sequence/"


RESYNC = "/admin/integrity/sequence/resync/"


RESYNC_ALL = "/admin/integrity/sequence/resync-all/"


LOWER = "/admin/integrity/sequence/lower/"


DASHBOARD = "/admin/integrity/"


AUDIT = "/admin/integrity/sequenceresync/"


PRODUCT_KEY = "default:shop.Product:id"


COUPON_KEY = "default:shop.Coupon:id"


OWNED_SEQUENCES_SQL = """
SELECT s.seqrelid::regclass::text, quote_ident(tn.nspname) || '.' || quote_ident(tc.relname),
       quote_ident(a.attname), s.seqstart, s.seqincrement
FROM pg_depend d
JOIN pg_sequence s ON s.seqrelid = d.objid
JOIN pg_class tc ON tc.oid = d.refobjid
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND tn.nspname IN ('public', 'archive')
ORDER BY 1
"""


def owned_sequences(alias: str) -> list[tuple[str, str, str, int, int]]:
    """(sequence, table, column, start, increment) of every sequence owned by a column."""
    with connections[alias].cursor() as cursor:
        cursor.execute(OWNED_SEQUENCES_SQL)
        return list(cursor.fetchall())


def sequence_of(model: type[Model], column: str = "id", using: str = "default") -> str:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [model._meta.db_table, column])
        return str(cursor.fetchone()[0])


def set_next(model: type[Model], value: int, column: str = "id", using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT setval(%s::regclass, %s, false)", [sequence_of(model, column, using), value])


# By sequence name, in plain SQL on any alias, independent of the code under test.


COUPON_SEQ = "public.shop_coupon_id_seq"


def sql_rows(sql: str, params: Any = None, using: str = "default") -> list[tuple[Any, ...]]:
    """Run ``sql`` on ``using``; the rows it returns (none for a statement without a result)."""
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def run_all(*statements: str, using: str = "default") -> None:
    """Run each of ``statements`` (no parameters) on ``using``, in order."""
    with connections[using].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def set_sequence_next(sequence: str, value: int, using: str = "default") -> None:
    """Make ``value`` the next value ``sequence`` hands out."""
    sql_rows("SELECT setval(%s::regclass, %s, false)", [sequence, value], using)


def next_of(sequence: str, using: str = "default") -> int:
    """The next value ``sequence`` would hand out (read without consuming it)."""
    last, called, step = sql_rows(
        f"SELECT s.last_value, s.is_called, p.seqincrement FROM {sequence} s, pg_sequence p "
        "WHERE p.seqrelid = %s::regclass",
        [sequence],
        using,
    )[0]
    return last + step if called else last


def resync_record(user: Any = None, **fields: Any) -> SequenceResync:
    """One line of the resync log, as a resync of shop.Product's sequence leaves it; ``fields`` override."""
    values = {
        "database": "default",
        "model": "shop.Product",
        "table": "shop_product",
        "column": "id",
        "sequence": "public.shop_product_id_seq",
        "value_before": 1,
        "value_after": 9,
        **fields,
    }
    return SequenceResync.objects.create(user=user, **values)


def merge_record(user: Any = None, **fields: Any) -> MergeRecord:
    """One line of the merge log, as a merge of two crm.Company rows into 12 leaves it; ``fields`` override."""
    values = {"database": "default", "model": "crm.Company", "rule": "default:crm.Company:unique:name",
              "survivor": "12", "removed": [13], **fields}  # fmt: skip
    return MergeRecord.objects.create(user=user, **values)


def info(label: str, column: str = "id", using: str = "default") -> SequenceInfo:
    """The service's report of one model column's sequence."""
    report = sequences.collect_alias(using, [apps.get_model(label)])
    matches = [i for i in report.sequences if i.column == column]
    assert len(matches) == 1, matches
    return matches[0]


def waiting_writers(table: str) -> int:
    """How many lock requests on ``table`` are waiting."""
    sql = "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted"
    return sql_rows(sql, [table])[0][0]


def sequences_command(*args: str) -> tuple[int, str, str]:
    """Run ``integrity sequences <args>`` as a user would; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    try:
        call_command("integrity", "sequences", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def reset_all_sequences() -> None:
    """Every owned sequence just past its column's MAX (or at its start): nothing behind.

    ``setval`` is not transactional, so sequences keep what earlier tests did
    to them even though their rows were rolled back; this gives each test the
    same starting point.
    """
    for alias in PG_ALIASES:
        with connections[alias].cursor() as cursor:
            for seq, table, column, start, increment in owned_sequences(alias):
                cursor.execute(
                    f"SELECT setval(%s::regclass, COALESCE((SELECT MAX({column}) FROM {table}) + %s, %s), false)",
                    [seq, increment, start],
                )


def snapshot() -> dict[Any, Any]:
    """Every sequence's (last_value, is_called) on both PostgreSQL aliases, plus the audit counts."""
    state: dict[Any, Any] = dict(sequence_values())
    state["audit"] = SequenceResync.objects.count()
    state["log"] = LogEntry.objects.count()
    return state


# Models whose rows need nothing but one text/number field: each can be made "behind".
FACTORIES: dict[type[Model], Callable[[int], dict[str, Any]]] = {
    Product: lambda i: {"name": f"Product {i}"},
    Tag: lambda i: {"name": f"tag-{i}"},
    Coupon: lambda i: {"code": f"C{i}"},
    Entry: lambda i: {"note": f"e{i}"},
    ArchivedEntry: lambda i: {"note": f"a{i}"},
    Reading: lambda i: {"value": float(i)},
    LegacyCounter: lambda i: {"name": f"c{i}"},
    Doctor: lambda i: {"name": f"Dr {i}"},
    Ticket: lambda i: {"subject": f"s{i}"},
    Group: lambda i: {"name": f"group-{i}"},
    Invoice: lambda i: {"amount": i},
}


def fill(model: type[Model], ids: range, using: str = "default") -> None:
    """Replace the table's rows by rows with these explicit ids (the sequence is not told)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {connections[using].ops.quote_name(model._meta.db_table)}")
    model._base_manager.db_manager(using).bulk_create([model(id=i, **FACTORIES[model](i)) for i in ids])


def make_behind(model: type[Model], rows: int = 8, using: str = "default") -> None:
    """Rows 1..rows written with explicit ids, sequence still at 1: the next insert collides."""
    fill(model, range(1, rows + 1), using)
    set_next(model, 1, using=using)


def make_ahead(model: type[Model], rows: int = 3, next_id: int = 10, using: str = "default") -> None:
    """Rows 1..rows, sequence at ``next_id``: a harmless gap."""
    fill(model, range(1, rows + 1), using)
    set_next(model, next_id, using=using)


def sequence_values() -> dict[tuple[str, str], tuple[int, bool]]:
    values = {}
    for alias in PG_ALIASES:
        with connections[alias].cursor() as cursor:
            for seq, *_rest in owned_sequences(alias):
                cursor.execute(f"SELECT last_value, is_called FROM {seq}")
                values[(alias, seq)] = cursor.fetchone()
    return values


def restore_sequence_values(values: dict[tuple[str, str], tuple[int, bool]]) -> None:
    for (alias, seq), (last_value, is_called) in values.items():
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT setval(%s::regclass, %s, %s)", [seq, last_value, is_called])


@pytest.fixture(autouse=True)
def clean_sequences(request: pytest.FixtureRequest) -> Iterator[None]:
    """Start from "nothing behind"; leave every sequence as it was found.

    Rows roll back with the test but sequence values do not, so without the
    restore these tests would change what other test modules see.
    """
    if request.node.get_closest_marker("django_db") is None:
        yield
        return
    saved = sequence_values()
    reset_all_sequences()
    yield
    restore_sequence_values(saved)


COLUMNS = (  # the cells of a row in order (the "Resync selected" checkbox cell is skipped)
    "model",
    "column",
    "status",
    "next_value",
    "max_value",
    "capacity",
    "actions",
    "database",
    "table",
    "sequence",
    "types",
)


@dataclass
class Row:
    """One ``<tr>`` of the sequence table as the user sees it."""

    attrs: dict[str, str]
    cells: list[str] = field(default_factory=list)
    forms: list[str] = field(default_factory=list)  # form actions
    links: list[str] = field(default_factory=list)  # hrefs
    keys: list[str] = field(default_factory=list)  # hidden "key" inputs

    def __getitem__(self, column: str) -> str:
        return self.cells[COLUMNS.index(column)]

    @property
    def key(self) -> str:
        return f"{self['database']}:{self['model']}:{self['column']}"

    @property
    def status(self) -> str:
        return self.attrs["data-status"]


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self._row: Row | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-status" in a:
            self._row = Row(attrs=a)
            self.rows.append(self._row)
        elif self._row is None:
            return
        elif tag == "td" and "action-checkbox" in a.get("class", "").split():
            self._cell = None  # the checkbox of "Resync selected": not one of COLUMNS
        elif tag == "td":
            self._cell = []
        elif tag == "form":
            self._row.forms.append(a.get("action", ""))
        elif tag == "a":
            self._row.links.append(a.get("href", ""))
        elif tag == "input" and a.get("name") == "key" and a.get("type") == "hidden":
            self._row.keys.append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(content: bytes) -> list[Row]:
    parser = _TableParser()
    parser.feed(content.decode())
    return parser.rows


def text(response: Any) -> str:
    """The response body as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    without_tags = re.sub(r"<[^>]*>", "", response.content.decode())
    return " ".join(html.unescape(without_tags).split())


def csrf_token_of(content: bytes) -> str:
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', content)
    assert match, "the page has no form with a CSRF token"
    return match.group(1).decode()


def login_redirect(response: Any, path: str, login: str = "/admin/login/") -> bool:
    """Whether the response sends the user to the admin login page, coming back to ``path``."""
    if response.status_code != 302:
        return False
    parts = urlsplit(response["Location"])
    return parts.path == login and parse_qs(parts.query).get("next") == [path]


# ---------------------------------------------------------------------------
# Duplicates pages: the rule table
# ---------------------------------------------------------------------------


VAT_KEY = "default:crm.Company:unique:vat_number"  # missing: migration 0002 dropped it (drift)


@dataclass
class Tr:
    """One ``<tr>`` with a ``data-*`` attribute, as the user sees it."""

    attrs: dict[str, str]
    header: str = ""  # its <th scope=row>
    cells: list[str] = field(default_factory=list)
    classes: list[list[str]] = field(default_factory=list)
    anchors: list[dict[str, str]] = field(default_factory=list)
    spans: dict[str, str] = field(default_factory=dict)  # id -> text

    def cell(self, name: str) -> str:
        return next(c for c, cls in zip(self.cells, self.classes, strict=True) if name in cls)

    def links(self, label: str | None = None) -> list[dict[str, str]]:
        return [a for a in self.anchors if label is None or a["text"] == label]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Tr] = []
        self.row: Tr | None = None
        self.buffer: list[str] | None = None
        self.anchor: dict[str, str] | None = None
        self.span: tuple[str, list[str]] | None = None
        self.in_header = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and any(k.startswith("data-") for k in a):
            self.row = Tr(a)
            self.rows.append(self.row)
        elif self.row is None:
            return
        elif tag == "td":
            self.buffer = []
            self.row.classes.append(a.get("class", "").split())
        elif tag == "th":
            self.buffer, self.in_header = [], True
        elif tag == "a":
            self.anchor = {**a, "text": ""}
            self.row.anchors.append(self.anchor)
        elif tag == "span" and "id" in a:
            self.span = (a["id"], [])

    def handle_endtag(self, tag: str) -> None:
        if self.row is None:
            return
        if tag in ("td", "th") and self.buffer is not None:
            content = " ".join("".join(self.buffer).split())
            if self.in_header:
                self.row.header = content
            else:
                self.row.cells.append(content)
            self.buffer, self.in_header = None, False
        elif tag == "a" and self.anchor is not None:
            self.anchor["text"] = " ".join(self.anchor["text"].split())
            self.anchor = None
        elif tag == "span" and self.span is not None:
            self.row.spans[self.span[0]] = "".join(self.span[1]).strip()
            self.span = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.buffer is not None:
            self.buffer.append(data)
        if self.anchor is not None:
            self.anchor["text"] += data
        if self.span is not None:
            self.span[1].append(data)


def rows_of(content: bytes, attr: str) -> list[Tr]:
    parser = _Parser()
    parser.feed(content.decode())
    return [r for r in parser.rows if attr in r.attrs]


# ---------------------------------------------------------------------------
# Events: groups and violations
# ---------------------------------------------------------------------------


def group(
    constraint: str = "shop_product_name_key",
    *,
    ago: timedelta = timedelta(minutes=5),
    count: int = 1,
    handled: int = 0,
    samples: int = 0,
    **fields: Any,
) -> EventGroup:
    """One group as ``events.write`` leaves it, seen last ``ago`` before now (and first a day before that)."""
    last = timezone.now() - ago
    values: dict[str, Any] = {
        "fingerprint": uuid.uuid4().hex,
        "database": "default",
        "kind": "unique",
        "sqlstate": "23505",
        "constraint": constraint,
        "table": "shop_product",
        "columns": ["name"],
        "model": "shop.Product",
        "fields": ["name"],
        "message": f'duplicate key value violates unique constraint "{constraint}"',
        "count": count,
        "handled_count": handled,
        "sampled": samples,
        "first_seen": last - timedelta(days=1),
        "last_seen": last,
        **fields,
    }
    made = EventGroup.objects.create(**values)
    for i in range(samples):
        Event.objects.create(
            group=made,
            created_at=last - timedelta(minutes=i),
            database=made.database,
            origin="request",
            method="POST",
            path=f"/shop/new/{i}/",
            view="shop:new",
        )
    return made


def violation(constraint: str, **overrides: Any) -> Violation:
    """What the parser makes of a duplicate key error on ``shop_product``."""
    values: dict[str, Any] = {
        "kind": "unique",
        "sqlstate": "23505",
        "vendor": "postgresql",
        "constraint": constraint,
        "schema": "public",
        "table": "shop_product",
        "columns": ("id",),
        "values": ("7",),
        "message": f'duplicate key value violates unique constraint "{constraint}"',
        "detail": "Key (id)=(7) already exists.",
        "model": "shop.Product",
        "fields": ("id",),
        "primary_key": True,
        **overrides,
    }
    return Violation(**values)


def name_taken(constraint: str = "shop_product_name_key") -> Violation:
    """A duplicate ``shop_product.name``, as a unique constraint of the table's own reports it (no model)."""
    return violation(
        constraint,
        columns=("name",),
        values=("Trackpad",),
        detail="Key (name)=(Trackpad) already exists.",
        model=None,
        fields=(),
        primary_key=False,
    )


def write_in_thread(write: Callable[[], Any]) -> None:
    """Run a database write in another thread (no event loop there) and wait for it."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the write did not finish"
    if failures:
        raise failures[0]


REQUEST = {"method": "POST", "path": "/shop/products/add/", "view": "shop:product_add", "user_pk": "42"}


# ---------------------------------------------------------------------------
# Browsers
# ---------------------------------------------------------------------------


CHROMIUM = "/usr/bin/chromium"


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


TIMEOUT_MS = 15_000


PASSWORD = "browser-test-pw"


def require_chromium(path: str | None = None) -> None:
    """Skip the test, saying what to install, where Chromium is missing; under CI (``CI=true``) fail instead.

    CI installs Debian's ``chromium`` (``.ci/run``), so a browser test that
    does not run there is a failure, never a silent skip.
    """
    path = path or CHROMIUM
    if os.path.exists(path):
        return
    message = f"no Chromium at {path}: install it with `apt-get install chromium` to run the browser tests"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(message)


@contextmanager
def browser_page(**context_options: Any) -> Iterator[Page]:
    """A fresh page in a fresh headless Chromium; no database access while it is open."""
    require_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(**context_options)
            context.set_default_timeout(TIMEOUT_MS)
            context.set_default_navigation_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


def log_in(page: Page, base_url: str, username: str, next_path: str) -> None:
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#login-form [type=submit]").click()
    expect(page).to_have_url(f"{base_url}{next_path}")
    # The URL changes when the page starts to arrive: callers that count elements at once need all of it.
    page.wait_for_load_state()


# ---------------------------------------------------------------------------
# Real HTTP posts
# ---------------------------------------------------------------------------


# Django takes an unmasked 32-character secret as the form token too: no page to fetch first.
TOKEN = "integrityTestToken0123456789abcd"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def post(base: str, path: str, data: dict[str, str] | None = None, session: str = "") -> Answer:
    """A real form POST over HTTP with a valid CSRF cookie and token (and a session cookie, if any)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "localhost", url.port, timeout=30)
    cookie = f"csrftoken={TOKEN}" + (f"; {settings.SESSION_COOKIE_NAME}={session}" if session else "")
    try:
        conn.request(
            "POST",
            path,
            body=urlencode({"csrfmiddlewaretoken": TOKEN, **(data or {})}),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )
        response = conn.getresponse()
        return Answer(response.status, response.read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# Merges and explanations: rows, dumps, violations
# ---------------------------------------------------------------------------


def merging_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name LIKE 'merging\\_%%' ORDER BY 1"
        )
        return [r[0] for r in cursor.fetchall()]


def dump(tables: list[str] | None = None) -> dict[str, list[Any]]:
    """Every row of every ``merging_*`` table (or of ``tables``), as ``row_to_json``, by id."""
    out = {}
    with connection.cursor() as cursor:
        for table in tables or merging_tables():
            qt = connection.ops.quote_name(table)
            cursor.execute(f"SELECT row_to_json(t)::text FROM {qt} t ORDER BY id")  # noqa: S608
            out[table] = [r[0] for r in cursor.fetchall()]
    return out


def person(email: str = "dup@example.com", **kw: Any) -> merging.Person:
    return merging.Person.objects.create(email=email, **kw)


def moves_by_label(plan: merge_plan.Plan) -> dict[str, merge_plan.Move]:
    """By ``app.Holder.field`` (an auto-created many-to-many table is its own holder)."""
    return {f"{m.relation.holder._meta.label}.{m.relation.field.name}": m for m in plan.moves}


def populate(a: merging.Person, b: merging.Person) -> None:
    """References of every kind to ``b`` (and a few to ``a``), with conflicts."""
    club, group, news = (
        merging.Club.objects.create(name="c"),
        merging.Group.objects.create(name="g"),
        merging.Newsletter.objects.create(),
    )
    for p in (a, b):
        merging.Order.objects.create(person=p)
        merging.Seat.objects.create(person=p, number=1, row=str(p.pk))
        p.groups.add(group)
        news.readers.add(p)
        merging.ClubMembership.objects.create(person=p, club=club, role=f"r{p.pk}")
        merging.Tagged.objects.create(target=p, tag="same")
        merging.Tagged.objects.create(target=p, tag=f"t{p.pk}")
        merging.Note.objects.create(target=p, text=str(p.pk))
        merging.Badge.objects.create(person=p, code=str(p.pk))
        merging.Receipt.objects.create(person=p, number=str(p.pk))
    merging.Badge.objects.create(code="nobody")
    merging.Invoice.objects.create(person=b)
    merging.Profile.objects.create(person=b, bio="b")
    person("mentee@example.com", mentor=b)
    b.passport = merging.Passport.objects.create(number="PB")
    b.save()


def choices(rule: Rule, a: merging.Person, b: merging.Person) -> dict[str, Any]:
    """Resolve every conflict with the duplicate's row."""
    plan = merge_plan.build_plan(rule, a.pk, [b.pk])
    return {c.id: next(r.pk for r in c.rows if r.owner == b.pk) for c in plan.unresolved}


def run(sql: str, params: Any = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def violation_of(write: Callable[[], Any]) -> violations.Violation:
    """The parsed IntegrityError that ``write`` raises (its savepoint rolled back)."""
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        run("SET CONSTRAINTS ALL IMMEDIATE")  # foreign keys fail at the statement, not at COMMIT
        write()
    return violations.parse(caught.value, "default")


def group_of(
    v: violations.Violation,
    samples: list[datetime] | None = None,
    handled: int = 0,
    fingerprint: str = "",
    started: list[datetime] | None = None,
) -> EventGroup:
    """The group (and samples) ``events.write`` would have stored for ``v``; ``started``: each request's start."""
    samples = samples if samples is not None else [timezone.now()]
    group = EventGroup.objects.create(
        fingerprint=fingerprint or events.fingerprint("default", v),
        database="default",
        kind=v.kind,
        sqlstate=v.sqlstate or "",
        constraint=v.constraint or "",
        table=events._table_name(v),
        columns=list(v.columns),
        model=v.model or "",
        fields=list(v.fields),
        primary_key=v.primary_key,
        message=v.message,
        count=max(len(samples), 1) + handled,
        handled_count=handled,
        sampled=len(samples),
        first_seen=min(samples, default=timezone.now()),
        last_seen=max(samples, default=timezone.now()),
    )
    starts: list[datetime | None] = list(started) if started is not None else [None] * len(samples)
    for when, began in zip(samples, starts, strict=True):
        Event.objects.create(
            group=group, created_at=when, started_at=began, database="default", origin="request", path="/"
        )
    return group


# Concurrency: a call in a thread, a backend waiting on a lock, a merge paused while it holds its locks.


def wait_for_lock_waiter(timeout: float = 10.0) -> bool:
    """Whether another backend is waiting on a lock (polled on this thread's own connection)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``target`` in a daemon thread; the dict gets its "result" or "error" (its connections closed)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def merge_holding_its_locks(
    rule: Rule, survivor: Any, dups: list[Any]
) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    """A merge in a thread, paused once it holds its locks, until the returned event is set."""
    locked, go_on = threading.Event(), threading.Event()

    def pause(name: str) -> None:
        if name == "locked":
            locked.set()
            assert go_on.wait(20)

    thread, out = in_thread(lambda: merge.merge(rule, survivor, dups, step=pause))
    assert locked.wait(20)
    return thread, out, go_on


def integrity_command(*args: str, stderr: io.StringIO | None = None) -> tuple[int, str, str]:
    """Run ``integrity <args>`` as a user would; (exit status, stdout, stderr with the error message)."""
    out, err = io.StringIO(), stderr or io.StringIO()
    code: Any = 0
    try:
        call_command("integrity", *args, stdout=out, stderr=err)
    except CommandError as exc:
        # What run_from_argv does: the message on stderr, exit with its returncode.
        code = exc.returncode
        err.write(str(exc))
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------
# Another session holding locks, for the timeout tests
# ---------------------------------------------------------------------------

HOLD_SECONDS = 20  # the lock holder's session ends by itself then: a test that waits fails, never hangs
MARGIN = 5.0  # seconds granted over the timeout setting


@contextmanager
def held(*tables: str, mode: str = "ACCESS EXCLUSIVE") -> Iterator[None]:
    """Another session holds ``tables`` locked in ``mode`` for the block (at most ``HOLD_SECONDS``)."""
    other = psycopg.connect(**connection.get_connection_params(), autocommit=False)
    try:
        other.execute(f"SET idle_in_transaction_session_timeout = '{HOLD_SECONDS}s'")
        for table in tables:
            other.execute(f'LOCK TABLE "{table}" IN {mode} MODE')
        yield
    finally:
        try:
            other.rollback()
        except psycopg.Error:
            pass  # the server ended the session already (it held the lock past HOLD_SECONDS)
        finally:
            other.close()


# ---------------------------------------------------------------------------
# Enforce: the demo's drifted and invalid rules, and putting them back
# ---------------------------------------------------------------------------

ENFORCE = "/admin/integrity/duplicaterule/enforce/"
ENFORCE_RUN = "/admin/integrity/duplicaterule/enforce/run/"


def vat_index_name() -> str:
    """The name Django gives Company.vat_number's unique constraint (what Enforce builds)."""
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        name: str = editor._create_index_name("crm_company", ["vat_number"], suffix="_uniq")  # type: ignore[attr-defined]
        return name


def unique_indexes(table: str) -> list[tuple[Any, ...]]:
    """``(name, valid)`` of every non-primary unique index of ``table``."""
    return sql_rows(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary ORDER BY 1",
        [table],
    )


def undo_enforce() -> None:
    """The demo's drift again: no VAT number or subscriber email index, whatever a test built (committed)."""
    run(f'ALTER TABLE crm_company DROP CONSTRAINT IF EXISTS "{vat_index_name()}"')
    run(f'DROP INDEX IF EXISTS "{vat_index_name()}"')
    run("ALTER TABLE crm_subscriber DROP CONSTRAINT IF EXISTS crm_subscriber_email_uniq")
    run("DROP INDEX IF EXISTS crm_subscriber_email_uniq")


def leave_invalid_subscriber_index() -> None:
    """What a failed CREATE UNIQUE INDEX CONCURRENTLY leaves: an INVALID index (then the duplicate goes). Commits."""
    run("INSERT INTO crm_subscriber (email) VALUES ('twice@example.com'), ('twice@example.com')")
    with pytest.raises(IntegrityError, match="could not create unique index"):
        run("CREATE UNIQUE INDEX CONCURRENTLY crm_subscriber_email_uniq ON crm_subscriber (email)")
    run("DELETE FROM crm_subscriber WHERE id = (SELECT max(id) FROM crm_subscriber)")
    assert unique_indexes("crm_subscriber") == [("crm_subscriber_email_uniq", False)]
