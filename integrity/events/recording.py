"""Recording IntegrityErrors as grouped events, never inside the transaction that failed.

``record()`` parses the error (``integrity.events.violations``), then writes two
statements: an upsert of its ``EventGroup`` (count, last seen, where it came
from, and whether this occurrence gets one of the group's sample slots, all
in one row update, so a storm cannot overshoot the sample limit) and, if it
got a slot, one ``Event``. When the events database's connection is inside an
atomic block (a caught error, ``capture()`` within a transaction, a test), a
connection of its own writes them, committed at once. Any failure to record
is logged as a warning and never replaces the original error.

``watch_queries`` is an execute wrapper installed on every connection: it
notes which database raised an IntegrityError and, while a request or a
``capture()`` collects them (``INTEGRITY_CAPTURE_HANDLED``), every one of
them, so that those the application caught are recorded as handled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ContextDecorator, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.apps import apps
from django.contrib.auth import SESSION_KEY
from django.db import DEFAULT_DB_ALIAS, DataError, IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from integrity.conf import settings
from integrity.events import locations, notify, trends
from integrity.events.locations import MAX_LOCATIONS
from integrity.models import Event, EventActivity, EventGroup
from integrity.reads import set_timeouts, sqlstate

if TYPE_CHECKING:
    from integrity.events import violations

logger = logging.getLogger("integrity.events")  # pinned: projects and tests name this logger

MAX_SOURCES = 50  # distinct views (and paths) counted per group
REDACTED = "…"
Seen = list[tuple[BaseException, str]]
F = TypeVar("F", bound=Callable[..., Any])
_collecting: ContextVar[Seen | None] = ContextVar("integrity_collecting", default=None)


# The DataErrors of a sequence that ran out (violations.DATA_SQLSTATES); other DataErrors are not recorded.
DATA_SQLSTATES = ("2200H", "22003")
STARTED = "integrity_started"  # the request's attribute: when the middleware saw it begin (time.time())


def recordable(exc: BaseException) -> bool:
    """An IntegrityError, or the DataError of a sequence that ran out."""
    if isinstance(exc, IntegrityError):
        return True
    return isinstance(exc, DataError) and sqlstate(exc) in DATA_SQLSTATES


def _note(exc: BaseException, alias: str, sql: str | None = None) -> None:
    """Tag ``exc`` with its database (and statement) and hand it to the collector, if any (once)."""
    exc.integrity_alias = alias  # type: ignore[attr-defined]
    if sql is not None and isinstance(exc, DataError):
        # Neither 2200H nor 22003 names the table: the INSERT that failed does.
        exc.integrity_sql = str(sql)[:2000]  # type: ignore[attr-defined]
    seen = _collecting.get()
    if seen is not None and not any(e is exc for e, _ in seen):
        seen.append((exc, alias))


def watch_queries(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Execute wrapper: tag an IntegrityError (or DataError) with its database and hand it to the collector, if any."""
    try:
        return execute(sql, params, many, context)
    except (IntegrityError, DataError) as exc:
        _note(exc, context["connection"].alias, sql)
        raise


def _watched_commit(connection: BaseDatabaseWrapper, commit: Callable[[], Any]) -> Callable[[], Any]:
    """``connection._commit`` that notes an IntegrityError raised by COMMIT itself (deferred constraints).

    COMMIT runs no query through the execute wrappers, and the driver's error
    does not say which connection failed.
    """

    def _commit() -> Any:
        try:
            return commit()
        except IntegrityError as exc:
            _note(exc, connection.alias)
            raise

    return _commit


def install(connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created`` receiver: put ``watch_queries`` on the connection, first and once; watch COMMIT.

    First, because ``execute_wrapper()`` blocks pop the last wrapper when they end.
    """
    if watch_queries not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, watch_queries)
    if not getattr(connection, "_integrity_commit_watched", False):
        connection._integrity_commit_watched = True  # type: ignore[attr-defined]
        commit = getattr(connection, "_commit")  # noqa: B009  (private, not in the stubs)
        setattr(connection, "_commit", _watched_commit(connection, commit))  # noqa: B010


def alias_of(exc: BaseException) -> str:
    """The database an IntegrityError came from: tagged by ``watch_queries`` or at COMMIT, else found by its connection."""
    alias = getattr(exc, "integrity_alias", None)
    if alias:
        return str(alias)
    pgconn = getattr(exc.__cause__, "pgconn", None)  # psycopg sets it on connection errors only
    if pgconn is not None:
        for wrapper in connections.all(initialized_only=True):
            raw = wrapper.connection
            if raw is not None and getattr(raw, "pgconn", None) is pgconn:
                return str(wrapper.alias)
    return DEFAULT_DB_ALIAS


# ---------------------------------------------------------------------------
# What is kept of one occurrence
# ---------------------------------------------------------------------------


def fingerprint(alias: str, v: violations.Violation) -> str:
    """Database, SQLSTATE and constraint; table and columns when the database names no constraint."""
    parts = [alias, v.sqlstate or v.kind]
    if v.constraint or v.sequence:
        parts += [v.constraint or v.sequence or ""]
    else:
        parts += [v.table or "", ",".join(v.columns)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _model_fields(v: violations.Violation) -> dict[str, Any]:
    if not v.model:
        return {}
    try:
        model = apps.get_model(v.model)
    except LookupError:
        return {}
    return {str(getattr(f, "column", "")): f for f in model._meta.concrete_fields}


def kept_values(v: violations.Violation, mode: str | None = None) -> list[Any]:
    """The key values to store: all, none, or (the default) only primary and foreign key values."""
    mode = mode or settings.EVENT_VALUES
    if mode == "all":
        return list(v.values)
    if mode == "none" or len(v.values) != len(v.columns):
        # A key whose values could not be split per column is one text: which
        # column each part belongs to is unknown, so none of it is kept.
        return [REDACTED for _ in v.values]
    fields = _model_fields(v)
    kept = []
    for column, value in zip(v.columns, v.values, strict=False):
        f = fields.get(column)
        kept.append(value if f is not None and (f.primary_key or f.is_relation) else REDACTED)
    return kept


def no_nul(text: str) -> str:
    """``text`` with every NUL shown as ``\\x00``: PostgreSQL text (and jsonb) cannot hold NUL."""
    return text.replace("\x00", "\\x00")


def cut(value: Any, limit: int | None = None) -> Any:
    """A stored text: NUL escaped, at most ``limit`` characters (``INTEGRITY_EVENT_VALUE_CHARS``), saying where it was cut.

    Lists are cut item by item; other values are kept as they are.
    """
    if isinstance(value, list | tuple):
        return [cut(item, limit) for item in value]
    if not isinstance(value, str):
        return value
    limit = settings.EVENT_VALUE_CHARS if limit is None else limit
    text = no_nul(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (cut at {limit:,} of {len(text):,} characters)"


def _message(v: violations.Violation, mode: str) -> str:
    # PostgreSQL's primary message names the constraint, never a value; other
    # databases' messages may quote the values (MySQL's "Duplicate entry 'x'").
    if v.vendor == "postgresql" or mode == "all":
        return v.message
    return f"{v.kind} violation" + (f" ({v.constraint})" if v.constraint else "")


def request_context(request: Any) -> dict[str, str]:
    """Method, path, view name and user pk, read without a query (the connection may be unusable)."""
    if request is None:
        return {"method": "", "path": "", "view": "", "user_pk": ""}
    match = getattr(request, "resolver_match", None)
    view = ""
    if match is not None:
        view = match.view_name or getattr(match, "_func_path", "") or ""
    return {
        "method": no_nul(str(getattr(request, "method", "") or ""))[:10],
        "path": no_nul(str(getattr(request, "path", "") or ""))[:2000],
        "view": no_nul(view)[:300],
        "user_pk": no_nul(_user_pk(request))[:100],
    }


def _user_pk(request: Any) -> str:
    """The user's pk: from the user or session the request loaded, else from its session if safe to read.

    A database-backed session is read (one query) only when its connection is
    outside any transaction: inside one, it may be the transaction that failed.
    """
    cached = getattr(request, "_cached_user", None)
    if cached is not None and getattr(cached, "is_authenticated", False):
        return str(cached.pk)
    session = getattr(request, "session", None)
    cache = getattr(session, "_session_cache", None)
    if cache is None and session is not None and _safe_to_load(session):
        try:
            cache = session.load() if getattr(session, "session_key", None) else {}
        except Exception:  # noqa: BLE001  (a session that cannot be read names no user)
            cache = None
    if isinstance(cache, dict) and cache.get(SESSION_KEY):
        return str(cache[SESSION_KEY])
    return ""


def _safe_to_load(session: Any) -> bool:
    model = getattr(type(session), "get_model_class", None)
    if model is None:
        return True  # cache, file or signed-cookie sessions: no database involved
    alias = router.db_for_read(model())
    return not connections[alias].in_atomic_block


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


@contextmanager
def _writer(alias: str, timeout_ms: int | None = None) -> Iterator[Any]:
    """A cursor outside any transaction of the caller's: the connection itself, or one of its own.

    Best effort, never a wait: the writes run in one transaction whose lock
    and statement timeouts are ``INTEGRITY_EVENT_WRITE_TIMEOUT_MS`` (``SET
    LOCAL``: they end with it), so a locked events table costs the response
    that much, then a warning. ``timeout_ms`` replaces the setting for one write.
    """
    ms = timeout_ms or settings.EVENT_WRITE_TIMEOUT_MS
    connection = connections[alias]
    if not connection.in_atomic_block and connection.get_autocommit():
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            set_timeouts(cursor, ms, ms)
            yield cursor
        return
    # Closed at once: a connection kept for later would outlive its thread
    # (and block DROP DATABASE, as at the end of a test run).
    side = connections.create_connection(alias)
    try:
        with side.cursor() as cursor:
            # The connection's whole life is this one write: the settings end with it.
            set_timeouts(cursor, ms, ms, local=False)
            yield cursor
    finally:
        side.close()


def _bump(column: str) -> str:
    """SQL adding 1 to ``column``'s count for the key %(<column>)s, within ``MAX_SOURCES`` keys."""
    key = f"%({column})s"
    # column is one of two constant names, never input.
    return (
        f"CASE WHEN {key} = '' THEN g.{column} "  # noqa: S608
        f"WHEN jsonb_exists(g.{column}, {key}) OR (SELECT COUNT(*) FROM jsonb_object_keys(g.{column})) "
        f"< {MAX_SOURCES} "
        f"THEN jsonb_set(g.{column}, ARRAY[{key}], to_jsonb(COALESCE((g.{column} ->> {key})::bigint, 0) + 1)) "
        f"ELSE g.{column} END"
    )


# The occurrence's innermost project frame counted in the group's ``locations``, within MAX_LOCATIONS
# keys: the entry (file, line, function, code) is the occurrence's, its count one more than before.
_LOCATION_BUMP = (
    "CASE WHEN %(location)s = '' THEN g.locations "  # noqa: S608  (MAX_LOCATIONS is a constant)
    "WHEN jsonb_exists(g.locations, %(location)s) OR (SELECT COUNT(*) FROM jsonb_object_keys(g.locations)) "
    f"< {MAX_LOCATIONS} "
    "THEN jsonb_set(g.locations, ARRAY[%(location)s], %(location_entry)s::jsonb || jsonb_build_object('count', "
    "COALESCE((g.locations -> %(location)s ->> 'count')::bigint, 0) + 1)) "
    "ELSE g.locations END"
)

# An ignored group whose ignore runs out with this occurrence: its date passed, or its count is reached.
_IGNORE_ENDS = (
    "(g.state = 'ignored' AND (g.ignored_until <= %(now)s OR g.count + 1 >= g.ignored_until_count))"
)


def _upsert_sql(qn: Callable[[str], str]) -> str:
    table = qn(EventGroup._meta.db_table)
    return (
        f"INSERT INTO {table} AS g (fingerprint, database, kind, sqlstate, {qn('constraint')}, {qn('table')}, "  # noqa: S608
        "columns, model, fields, primary_key, message, count, handled_count, sampled, last_slot, "
        "first_seen, last_seen, views, paths, locations, sequence, state, cause, cause_evidence, cause_count) "
        "VALUES (%(fingerprint)s, %(database)s, %(kind)s, %(sqlstate)s, "
        "%(constraint)s, %(table)s, %(columns)s::jsonb, %(model)s, %(fields)s::jsonb, %(primary_key)s, "
        "%(message)s, 1, %(handled)s, %(first_slot)s, %(first_slot)s, %(now)s, %(now)s, "
        "%(views_new)s::jsonb, %(paths_new)s::jsonb, %(locations_new)s::jsonb, %(sequence)s, 'unresolved', '', "
        "'{}'::jsonb, 0) "
        "ON CONFLICT (fingerprint) DO UPDATE SET count = g.count + 1, "
        # The lifecycle: a resolved group occurring again is regressed; an ignore that ran out ends.
        f"state = CASE WHEN g.state = 'resolved' THEN 'regressed' WHEN {_IGNORE_ENDS} THEN 'unresolved' "
        "ELSE g.state END, "
        "regressed_at = CASE WHEN g.state = 'resolved' THEN %(now)s ELSE g.regressed_at END, "
        f"ignored_until = CASE WHEN {_IGNORE_ENDS} THEN NULL ELSE g.ignored_until END, "
        f"ignored_until_count = CASE WHEN {_IGNORE_ENDS} THEN NULL ELSE g.ignored_until_count END, "
        "handled_count = g.handled_count + EXCLUDED.handled_count, "
        "last_seen = GREATEST(g.last_seen, EXCLUDED.last_seen), message = EXCLUDED.message, "
        "model = EXCLUDED.model, fields = EXCLUDED.fields, primary_key = EXCLUDED.primary_key, "
        "sampled = CASE WHEN g.sampled < %(limit)s THEN g.sampled + 1 ELSE g.sampled END, "
        "last_slot = CASE WHEN g.sampled < %(limit)s THEN g.count + 1 ELSE g.last_slot END, "
        f"views = {_bump('views')}, paths = {_bump('paths')}, locations = {_LOCATION_BUMP} "
        "RETURNING id, count, last_slot, state = 'regressed' AND regressed_at = %(now)s AS regressed, "
        # The whole row, for the notice of a new or regressed group only (integrity.events.notify): no read later.
        "CASE WHEN count = 1 OR (state = 'regressed' AND regressed_at = %(now)s) THEN row_to_json(g)::text END "
        "AS alert"
    )


def _insert_sample_sql(qn: Callable[[str], str]) -> str:
    return (
        f"INSERT INTO {qn(Event._meta.db_table)} (group_id, created_at, database, origin, method, path, view, "  # noqa: S608
        f"user_pk, started_at, handled, {qn('values')}, detail, locations) VALUES (%(group)s, %(now)s, "
        "%(database)s, %(origin)s, %(method)s, %(path)s, %(view)s, %(user_pk)s, %(started)s, %(handled_flag)s, "
        "%(values)s::jsonb, %(detail)s, %(frames)s::jsonb) RETURNING id"
    )


def _regressed_sql(qn: Callable[[str], str]) -> str:
    return (
        f"INSERT INTO {qn(EventActivity._meta.db_table)} (group_id, created_at, action, count, note, detail) "  # noqa: S608
        "VALUES (%(group)s, %(now)s, 'regressed', %(count)s, '', '{}'::jsonb)"
    )


def _table_name(v: violations.Violation) -> str:
    """``schema.table``, or just the table in ``public``."""
    if v.schema and v.schema != "public" and v.table:
        return f"{v.schema}.{v.table}"
    return v.table or ""


def write(
    v: violations.Violation,
    alias: str,
    context: dict[str, str],
    *,
    handled: bool = False,
    origin: str = "request",
    now: datetime | None = None,
    started: datetime | None = None,
    frames: list[dict[str, Any]] | None = None,
    write_timeout_ms: int | None = None,
) -> int | None:
    """Count the occurrence in its group (created on first sight) and keep a sample if a slot is free.

    ``frames`` are where in the project's code it came from (``locations.frames``),
    innermost first: kept on the sample, the innermost counted in the group's ``locations``.

    Two statements (a third when the occurrence regresses a resolved group); the first
    also counts it in its hour's and day's buckets (``trends``, unless ``INTEGRITY_EVENT_TRENDS`` is off).
    ``started`` is when the failing request (or ``capture()`` block) began. Returns the group's id, or None when the events database
    is not PostgreSQL (nothing is recorded there). ``write_timeout_ms`` replaces
    ``INTEGRITY_EVENT_WRITE_TIMEOUT_MS`` for this write (a caller that may wait longer than a request).
    """
    target = router.db_for_write(EventGroup)
    connection = connections[target]
    if connection.vendor != "postgresql":
        logger.warning(
            "IntegrityError events are recorded on PostgreSQL only; %r is %s.", target, connection.vendor
        )
        return None
    mode = settings.EVENT_VALUES
    limit = settings.EVENT_SAMPLES
    now = now or timezone.now()
    frames = frames or []
    location = locations.key(frames[0]) if frames else ""
    params = {
        "fingerprint": fingerprint(alias, v),
        "database": alias,
        "kind": v.kind,
        "sqlstate": v.sqlstate or "",
        "constraint": v.constraint or "",
        "table": _table_name(v),
        "columns": json.dumps(cut(list(v.columns))),
        "model": v.model or "",
        "fields": json.dumps(cut(list(v.fields))),
        "primary_key": bool(v.primary_key),
        "message": cut(_message(v, mode)),
        "handled": 1 if handled else 0,
        "first_slot": 1 if limit > 0 else 0,
        "now": now,
        "views": context["view"],
        "paths": context["path"],
        "views_new": json.dumps({context["view"]: 1} if context["view"] else {}),
        "paths_new": json.dumps({context["path"]: 1} if context["path"] else {}),
        "limit": limit,
        "sequence": cut(v.sequence or "", 300),
        "location": location,
        "location_entry": json.dumps(frames[0] if frames else {}),
        "locations_new": json.dumps({location: {**frames[0], "count": 1}} if frames else {}),
    }
    with _writer(target, write_timeout_ms) as cursor:
        qn = cursor.db.ops.quote_name
        upsert = _upsert_sql(qn)
        if settings.EVENT_TRENDS:
            upsert = trends.bucket_sql(upsert, qn)
            params |= trends.bucket_params(now)
        cursor.execute(upsert, params)
        group_id, count, last_slot, regressed, alert = cursor.fetchone()
        sample: dict[str, Any] | None = None
        if regressed:
            cursor.execute(_regressed_sql(qn), {"group": group_id, "now": now, "count": count})
        if limit > 0 and last_slot == count:
            sample = {
                **context,
                "group": group_id,
                "now": now,
                "database": alias,
                "origin": origin,
                "handled_flag": handled,
                "started": started,
                "values": json.dumps(cut(kept_values(v, mode))),
                "detail": cut(v.detail or "") if mode == "all" else "",
                "frames": json.dumps(frames),
            }
            cursor.execute(_insert_sample_sql(qn), sample)
            sample["id"] = cursor.fetchone()[0]
    if alert is not None:  # committed: now whoever listens may be told
        notify.queue(target, notify.REGRESSED if regressed else notify.NEW, alert, sample, frames)
    return int(group_id)


def record(
    exc: BaseException,
    *,
    alias: str | None = None,
    request: Any = None,
    handled: bool = False,
    origin: str = "request",
    started: float | None = None,
    write_timeout_ms: int | None = None,
) -> int | None:
    """Record one IntegrityError, or a sequence's DataError (once: a second call for the same exception does nothing).

    ``started`` (a ``time.time()``) is when the failing work began; by default
    the request's, as the middleware noted it. Other DataErrors are not
    recorded. Never raises: a failure to record is a warning in the log.
    ``write_timeout_ms`` as for ``write``.
    """
    if getattr(exc, "integrity_recorded", False) or not recordable(exc):
        return None
    try:
        exc.integrity_recorded = True  # type: ignore[attr-defined]
    except AttributeError:
        pass
    try:
        from integrity.events.violations import parse

        alias = alias or alias_of(exc)
        violation = parse(exc, alias)
        began = started if started is not None else getattr(request, STARTED, None)
        moment = datetime.fromtimestamp(began, tz=UTC) if began is not None else None
        context = request_context(request)
        frames = locations.frames(exc)  # from the error's own traceback: the error path only
        return write(
            violation,
            alias,
            context,
            handled=handled,
            origin=origin,
            started=moment,
            frames=frames,
            write_timeout_ms=write_timeout_ms,
        )
    except Exception:  # noqa: BLE001  (recording must never replace the application's error)
        logger.warning("Could not record an IntegrityError event", exc_info=True)
        return None


def record_handled(
    seen: Seen, request: Any = None, origin: str = "request", started: float | None = None
) -> None:
    """Record the collected errors that did not escape (those that did are recorded already)."""
    for exc, alias in seen:
        if not getattr(exc, "integrity_recorded", False):
            record(exc, alias=alias, request=request, handled=True, origin=origin, started=started)


@contextmanager
def collecting() -> Iterator[Seen | None]:
    """Collect every IntegrityError raised by a query meanwhile, if ``INTEGRITY_CAPTURE_HANDLED`` is on."""
    if not settings.CAPTURE_HANDLED:
        yield None
        return
    seen: Seen = []
    token = _collecting.set(seen)
    try:
        yield seen
    finally:
        _collecting.reset(token)


class Capture(ContextDecorator):
    """``integrity.capture()``: record IntegrityErrors raised inside, then let them propagate unchanged.

    Also ``async with integrity.capture():`` and a decorator of ``async def``
    functions: the recording then runs in a thread, as the ORM must.
    """

    def __init__(self, using: str | None = None) -> None:
        self.using = using
        self._stack: list[Any] = []

    def __call__(self, func: F) -> F:
        if not iscoroutinefunction(func):
            return super().__call__(func)

        @wraps(func)
        async def inner(*args: Any, **kwargs: Any) -> Any:
            async with self._recreate_cm():
                return await func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    def __enter__(self) -> Capture:
        manager = collecting()
        self._stack.append((manager, manager.__enter__(), time.time()))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._record(exc, *self._stop())

    async def __aenter__(self) -> Capture:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        seen, started = self._stop()  # here: the collector's context variable was set in this context
        await sync_to_async(self._record)(exc, seen, started)

    def _stop(self) -> tuple[Seen | None, float]:
        manager, seen, started = self._stack.pop()
        manager.__exit__(None, None, None)
        return seen, started

    def _record(self, exc: BaseException | None, seen: Seen | None, started: float) -> None:
        if isinstance(exc, IntegrityError | DataError):
            # The database the error names itself wins over ``using``.
            alias = getattr(exc, "integrity_alias", None) or self.using
            record(exc, alias=alias, origin="capture", started=started)
        if seen:
            record_handled(seen, None, origin="capture", started=started)
