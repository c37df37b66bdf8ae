"""Sequence status and safe resync: the service behind the sequences page and CLI.

No HTTP here. ``collect`` returns one ``SequenceInfo`` per sequence-fed
column of every model on every database alias (router-aware) with a constant
number of queries per alias; ``resync`` moves one sequence forward (or, when
asked explicitly, down to close a gap) under a table lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext as _

from integrity import reads, signals
from integrity.conf import settings
from integrity.db import models_for_alias
from integrity.models import SequenceResync
from integrity.sequences.audit import record_resync
from integrity.sequences.backend import (
    STATES_CHUNK,
    Feed,
    NotComparable,
    NotPermitted,
    OutOfRange,
    ResyncRefused,
    SequenceBackend,
    SequenceLink,
    SequenceState,
    TableBusy,
)
from integrity.sequences.postgresql import PostgresSequenceBackend
from integrity.transactions import writing

__all__ = [
    "SequenceInfo",
    "AliasReport",
    "SequenceNotFound",
    "TableBusy",
    "ResyncRefused",
    "NotPermitted",
    "NotComparable",
    "OutOfRange",
    "collect",
    "display_name",
    "named",
    "parse_key",
    "resync",
    "resync_sql",
    "resync_sql_each",
]

OK, AHEAD, BEHIND, EMPTY, UNREADABLE = "ok", "ahead", "behind", "empty", "unreadable"
NOT_COMPARABLE = "not comparable"
TYPE_MISMATCH = "type mismatch"  # shown as a status (SequenceInfo.shown_status), never stored as one
BUSY = "busy"  # not read in time: a lock another transaction holds, or a statement timeout
STATUSES = (BEHIND, UNREADABLE, BUSY, NOT_COMPARABLE, AHEAD, EMPTY, OK)

COLUMN_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def for_connection(connection: BaseDatabaseWrapper) -> SequenceBackend | None:
    """The sequence backend for ``connection``'s vendor, or ``None`` when the vendor is not supported yet.

    The pages and the command then say so instead of failing.
    """
    if connection.vendor == "postgresql":
        return PostgresSequenceBackend(connection)
    return None


class SequenceNotFound(LookupError):
    """No sequence feeds that column of that model on that database."""


@dataclass
class SequenceInfo:
    """One sequence feeding one column of one model's table on one database."""

    database: str
    model: str
    table: str
    column: str
    sequence: str
    column_type: str
    sequence_type: str
    kind: str
    start: int
    increment: int
    sequence_min: int
    sequence_max: int
    next_value: int | None
    max_value: int | None
    status: str
    capacity: float | None
    capacity_level: str
    type_mismatch: bool
    # Why the status is what it is: the column's values can't be compared with the sequence
    # ("not comparable"), or they could not be read in time ("busy").
    reason: str = ""
    # The other columns the same sequence feeds ("app.Model.column" or "schema.table.column").
    shared_with: list[str] = field(default_factory=list)

    @property
    def app_label(self) -> str:
        return self.model.split(".", 1)[0]

    @property
    def key(self) -> str:
        """Identifies the row in forms: alias, model label and column (an id: never shown to a person)."""
        return f"{self.database}:{self.model}:{self.column}"

    @property
    def display_name(self) -> str:
        """The sequence as a person knows it: ``public.shop_product_id_seq (Product.id)`` (see ``display_name``)."""
        return display_name(self.sequence, self.model, self.column, self.database)

    @property
    def problem(self) -> bool:
        return self.status in (BEHIND, UNREADABLE, BUSY) or self.capacity_level != "ok" or self.type_mismatch

    @property
    def needs_action(self) -> bool:
        """Shown by default on the sequences page: a problem, or a status that can't be checked (not comparable)."""
        return self.problem or self.status == NOT_COMPARABLE

    @property
    def shown_status(self) -> str:
        """The status a person reads: a fine status near overflow or with a type mismatch shows that instead."""
        if self.status in (OK, AHEAD, EMPTY):
            if self.capacity_level != "ok":
                return self.capacity_level
            if self.type_mismatch:
                return TYPE_MISMATCH
        return self.status

    def sort_key(self) -> tuple[Any, ...]:
        """Problems first: behind, unreadable, near overflow, type mismatch, then the rest."""
        if self.status in (BEHIND, UNREADABLE, BUSY):
            rank = STATUSES.index(self.status) / 10
        elif self.capacity_level != "ok":
            rank = 2 if self.capacity_level == "critical" else 3
        elif self.type_mismatch:
            rank = 4
        elif self.status == NOT_COMPARABLE:
            rank = 5
        else:
            rank = 6 + STATUSES.index(self.status)
        return (rank, self.database, self.model, self.column)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def display_name(sequence: str, label: str, column: str, database: str = DEFAULT_DB_ALIAS) -> str:
    """``public.shop_product_id_seq (Product.id)``; ``… on database 'other'`` off the default one.

    The one wording of a sequence on pages, in messages and in the command's
    text (``SequenceInfo.key`` is the id forms and ``--json`` carry).
    """
    name = f"{sequence} ({label.rpartition('.')[2]}.{column})"
    if database != DEFAULT_DB_ALIAS:
        return _("%(name)s on database %(alias)r") % {"name": name, "alias": database}
    return name


@dataclass
class AliasReport:
    """The sequences of one database alias, or why they could not be read."""

    database: str
    vendor: str
    supported: bool
    sequences: list[SequenceInfo] = field(default_factory=list)


def _capacity(link: SequenceLink, next_value: int | None, extreme: int | None) -> tuple[float | None, bool]:
    """Fraction of the usable range consumed, and whether the sequence can outrun the column.

    The usable range ends at the smaller of the column type's and the
    sequence's limits; "consumed" is the larger of the last value handed out
    and the column's MAX (MIN and lower limits for descending sequences).
    """
    low, high = COLUMN_RANGES.get(link.column_type, (None, None))
    issued = None if next_value is None else next_value - link.increment
    seen = [v for v in (extreme, issued) if v is not None]
    if link.increment > 0:
        limit = link.max_value if high is None else min(high, link.max_value)
        mismatch = high is not None and link.max_value > high
        used = max(seen, default=None)
    else:
        limit = link.min_value if low is None else max(low, link.min_value)
        mismatch = low is not None and link.min_value < low
        used = min(seen, default=None)
    if used is None or limit == 0 or used / limit <= 0:
        return (None if used is None else 0.0), mismatch
    return min(used / limit, 1.0), mismatch


def _status(link: SequenceLink, next_value: int | None, extreme: int | None) -> str:
    if not link.own.comparable:
        return NOT_COMPARABLE
    readable = link.sequence_readable and link.column_readable and link.extremes_readable
    if not readable or next_value is None:
        return UNREADABLE
    if extreme is None:
        return EMPTY
    step = link.increment
    if (step > 0 and next_value <= extreme) or (step < 0 and next_value >= extreme):
        return BEHIND
    return OK if next_value == extreme + step else AHEAD


def _level(capacity: float | None, thresholds: tuple[float, float]) -> str:
    warning, critical = thresholds
    if capacity is None:
        return "ok"
    if capacity >= critical:
        return "critical"
    return "warning" if capacity >= warning else "ok"


def next_value_of(state: SequenceState, increment: int) -> int | None:
    if state.last_value is None:
        return None
    return state.last_value + increment if state.is_called else state.last_value


def not_comparable_reason(feed: Feed) -> str:
    """Why a column's values say nothing about its sequence's next value."""
    name = f"{feed.table}.{feed.column}"
    if not feed.integer:
        return _(
            "%(column)s is %(type)s, not an integer: its values can't be compared with the sequence."
        ) % {
            "column": name,
            "type": feed.column_type,
        }
    return _("The default of %(column)s is %(expr)s, not the sequence's nextval() alone.") % {
        "column": name,
        "expr": feed.expression,
    }


def _feed_name(feed: Feed, labels: dict[str, str]) -> str:
    label = labels.get(feed.table)
    return f"{label}.{feed.column}" if label else f"{feed.schema}.{feed.table}.{feed.column}"


def _table_labels(alias: str) -> dict[str, str]:
    return {str(m._meta.db_table): m._meta.label for m in models_for_alias(alias)}


def _info(
    alias: str,
    label: str,
    link: SequenceLink,
    state: SequenceState | reads.ReadBusy,
    thresholds: tuple[float, float],
    labels: dict[str, str] | None = None,
) -> SequenceInfo:
    busy = state if isinstance(state, reads.ReadBusy) else None
    if isinstance(state, reads.ReadBusy):
        state = SequenceState(None, None, None)
    next_value = next_value_of(state, link.increment)
    extreme = state.column_extreme
    capacity, mismatch = _capacity(link, next_value, extreme)
    return SequenceInfo(
        database=alias,
        model=label,
        table=f"{link.schema}.{link.table}",
        column=link.column,
        sequence=f"{link.sequence_schema}.{link.sequence}",
        column_type=link.column_type,
        sequence_type=link.sequence_type,
        kind=link.kind,
        start=link.start,
        increment=link.increment,
        sequence_min=link.min_value,
        sequence_max=link.max_value,
        next_value=next_value,
        max_value=extreme,
        status=BUSY if busy else _status(link, next_value, extreme),
        capacity=None if capacity is None else round(capacity, 6),
        capacity_level=_level(capacity, thresholds),
        type_mismatch=mismatch,
        reason=busy.reason if busy else "" if link.own.comparable else not_comparable_reason(link.own),
        shared_with=[_feed_name(f, labels or {}) for f in link.others],
    )


def _links(alias: str, models: Sequence[type[Model]]) -> list[tuple[str, SequenceLink]]:
    backend = for_connection(connections[alias])
    assert backend is not None
    tables = [m._meta.db_table for m in models]
    return [(models[link.ref]._meta.label, link) for link in backend.links(tables)]


def collect_alias(alias: str, models: Iterable[type[Model]] | None = None) -> AliasReport:
    """Status of every sequence on ``alias``: two queries, whatever the model count."""
    connection = connections[alias]
    backend = for_connection(connection)
    report = AliasReport(database=alias, vendor=connection.vendor, supported=backend is not None)
    if backend is None:
        return report
    with reads.bounded(
        alias, savepoint=False
    ):  # the catalog query locks no table, but is bounded all the same
        labelled = _links(alias, models_for_alias(alias, models))
        states = read_states(alias, backend, [link for _, link in labelled])
    thresholds = (settings.CAPACITY_WARNING, settings.CAPACITY_CRITICAL)  # read once, not per row
    labels = _table_labels(alias) if any(link.others for _, link in labelled) else {}
    report.sequences = [
        _info(alias, label, link, state, thresholds, labels)
        for (label, link), state in zip(labelled, states, strict=True)
    ]
    report.sequences.sort(key=SequenceInfo.sort_key)
    return report


def read_states(
    alias: str, backend: SequenceBackend, links: list[SequenceLink]
) -> list[SequenceState | reads.ReadBusy]:
    """Every link's state, a bounded statement per chunk of links; a chunk that times out, link by link.

    Chunks (``STATES_CHUNK`` links) keep each statement small, and each runs
    in a savepoint rolled back after it, which ends its locks: 10,000 tables
    read in the caller's one transaction would hold 30,000 (table, key index,
    sequence), past PostgreSQL's lock table ("out of shared memory"). A link
    whose table (or sequence) another transaction holds, or that could not be
    read before the budget (one statement timeout, shared by every chunk that
    needs it) was spent, gets a ``ReadBusy`` saying why; every other link is
    read exactly.
    """
    found: list[SequenceState | reads.ReadBusy] = []
    budget = _Budget()
    for start in range(0, len(links), STATES_CHUNK):
        chunk = links[start : start + STATES_CHUNK]
        try:
            with reads.bounded(alias):
                found += backend.states(chunk)
        except reads.ReadBusy:
            found += _read_apart(alias, backend, chunk, budget)
    return found


class _Budget:
    """One statement timeout for all the links read apart, from the first time it is needed."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def left_ms(self) -> int:
        if self.deadline is None:
            self.deadline = time.monotonic() + settings.READ_STATEMENT_TIMEOUT_MS / 1000
        return int((self.deadline - time.monotonic()) * 1000)


def _read_apart(
    alias: str, backend: SequenceBackend, links: list[SequenceLink], budget: _Budget
) -> list[SequenceState | reads.ReadBusy]:
    budget.left_ms()  # the budget starts now
    with reads.bounded(alias):
        held = backend.locked(
            [(lk.schema, lk.table) for lk in links] + [(lk.sequence_schema, lk.sequence) for lk in links]
        )
    locked = reads.ReadBusy(reads.locked_reason(), locked=True)
    found: dict[int, SequenceState | reads.ReadBusy] = {
        i: locked
        for i, lk in enumerate(links)
        if (lk.schema, lk.table) in held or (lk.sequence_schema, lk.sequence) in held
    }
    failed: dict[tuple[str, str], reads.ReadBusy] = {}  # a table that timed out is not tried again
    for i, link in enumerate(links):
        if i in found:
            continue
        left = budget.left_ms()
        table = (link.schema, link.table)
        if table in failed or left <= 0:
            found[i] = failed.get(table) or reads.ReadBusy(
                _("not read: the time for reading was spent"), locked=False
            )
            continue
        try:
            with reads.bounded(alias, statement_ms=min(left, settings.READ_STATEMENT_TIMEOUT_MS)):
                found[i] = backend.states([link])[0]
        except reads.ReadBusy as exc:
            found[i] = failed[table] = exc
    return [found[i] for i in range(len(links))]


def collect(
    databases: Iterable[str] | None = None, models: Iterable[type[Model]] | None = None
) -> list[AliasReport]:
    """Status of every sequence on every alias in ``databases`` (default: all)."""
    model_list = None if models is None else list(models)
    return [collect_alias(alias, model_list) for alias in (databases or list(connections))]


@dataclass
class ResyncResult:
    """What one resync did."""

    info: SequenceInfo
    value_before: int
    value_after: int
    record_id: int | None

    @property
    def changed(self) -> bool:
        return self.value_before != self.value_after


def find(alias: str, label: str, column: str) -> tuple[type[Model], SequenceLink]:
    """Resolve a (database, model, column) triple to its sequence, from the catalog."""
    if alias not in connections:
        raise SequenceNotFound(_("Unknown database %(alias)r.") % {"alias": alias})
    # get_models(include_auto_created=True) also knows M2M through tables.
    model = next((m for m in apps.get_models(include_auto_created=True) if m._meta.label == label), None)
    if model is None:
        raise SequenceNotFound(_("Unknown model %(label)r.") % {"label": label})
    if for_connection(connections[alias]) is None or not models_for_alias(alias, [model]):
        raise SequenceNotFound(
            _("%(label)s does not live on database %(alias)r.") % {"label": label, "alias": alias}
        )
    for _label, link in _links(alias, [model]):
        if link.column == column:
            return model, link
    raise SequenceNotFound(
        _("No sequence feeds %(label)s.%(column)s on database %(alias)r.")
        % {"label": label, "column": column, "alias": alias}
    )


def parse_key(key: str) -> tuple[str, str, str]:
    """``SequenceInfo.key`` back to (database, model label, column); ``SequenceNotFound`` when malformed."""
    parts = key.split(":")
    if len(parts) != 3 or not all(parts):
        raise SequenceNotFound(_("Malformed sequence key %(key)r.") % {"key": key})
    return parts[0], parts[1], parts[2]


def named(key: str) -> str:
    """The ``display_name`` of the sequence ``key`` identifies, from the catalog; ``SequenceNotFound``."""
    alias, label, column = parse_key(key)
    _model, link = find(alias, label, column)
    return display_name(f"{link.sequence_schema}.{link.sequence}", label, column, alias)


def _target(link: SequenceLink, state: SequenceState, lower: bool) -> int | None:
    """The next value the sequence should hand out, or None to leave it."""
    current = next_value_of(state, link.increment)
    if state.column_extreme is None:
        wanted = link.start
    else:
        wanted = state.column_extreme + link.increment
    if not (link.min_value <= wanted <= link.max_value):
        raise OutOfRange(
            _("%(seq)s cannot hand out %(value)s: it is outside the sequence's range %(low)s..%(high)s.")
            % {"seq": link.sequence, "value": wanted, "low": link.min_value, "high": link.max_value}
        )
    ahead = current is not None and (wanted - current) * link.increment < 0
    if ahead and not lower:
        return None  # forward only: never move a sequence back unless asked
    if not ahead and lower:
        return None  # lowering only ever lowers
    return wanted


def resync_sql(alias: str, label: str, column: str, *, lower: bool = False) -> list[str]:
    """The statements a resync (or, with ``lower``, a lowering) would run now; empty when it would change nothing.

    The backend's own statements, with the target read now: the resync reads it
    again under its lock, so a row inserted in between moves it further.
    ``SequenceNotFound`` or a ``ResyncRefused`` as ``resync`` would raise them.
    """
    _model, link = find(alias, label, column)
    _check_comparable(link, lower)
    _check_readable(link)
    backend = for_connection(connections[alias])
    assert backend is not None
    [state] = backend.states([link])
    return _planned(backend, link, state, lower)


def resync_sql_each(infos: Sequence[SequenceInfo]) -> list[list[str] | LookupError | ResyncRefused]:
    """``resync_sql`` (forward) of each of ``infos``, reading the catalog and the sequences once per database.

    Each item is the statements, or what ``resync`` would raise instead
    (``SequenceNotFound``, a ``ResyncRefused``): the confirmation of "resync
    all" shows thousands of sequences in a few queries.
    """
    found: dict[int, list[str] | LookupError | ResyncRefused] = {}
    for alias in dict.fromkeys(info.database for info in infos):
        mine = [(n, info) for n, info in enumerate(infos) if info.database == alias]
        labels = {info.model for _n, info in mine}
        models = [m for m in apps.get_models(include_auto_created=True) if m._meta.label in labels]
        links = {(label, link.column): link for label, link in _links(alias, models)}
        todo = []
        for n, info in mine:
            link = links.get((info.model, info.column))
            try:
                if link is None:
                    raise SequenceNotFound(
                        _("No sequence feeds %(label)s.%(column)s on database %(alias)r.")
                        % {"label": info.model, "column": info.column, "alias": alias}
                    )
                _check_comparable(link, False)
                _check_readable(link)
            except (SequenceNotFound, ResyncRefused) as exc:
                found[n] = exc
                continue
            todo.append((n, link))
        backend = for_connection(connections[alias])
        assert backend is not None
        for (n, link), state in zip(todo, backend.states([link for _n, link in todo]), strict=True):
            try:
                found[n] = _planned(backend, link, state, False)
            except ResyncRefused as exc:
                found[n] = exc
    return [found[n] for n in range(len(infos))]


def _planned(backend: SequenceBackend, link: SequenceLink, state: SequenceState, lower: bool) -> list[str]:
    target = _target(link, state, lower)
    if target is None or target == next_value_of(state, link.increment):
        return []
    return backend.statements(link, target)


def _check_readable(link: SequenceLink) -> None:
    if not (link.sequence_readable and link.column_readable and link.extremes_readable):
        raise NotPermitted(
            _("The database user cannot read %(seq)s or every column it feeds (%(table)s.%(column)s).")
            % {"seq": link.sequence, "table": link.table, "column": link.column}
        )


def _check_comparable(link: SequenceLink, lower: bool) -> None:
    """Refuse what can't be computed: a column whose values aren't the sequence's, or lowering past one."""
    if not link.own.comparable:
        raise NotComparable(not_comparable_reason(link.own))
    blind = [f for f in link.others if not f.comparable]
    if lower and blind:
        message = _(
            "%(seq)s also feeds %(columns)s, whose values can't be compared with it: lowering it could "
            "hand out a value that column holds already."
        )
        raise NotComparable(
            message % {"seq": link.sequence, "columns": ", ".join(f"{f.table}.{f.column}" for f in blind)}
        )


def resync(alias: str, label: str, column: str, *, user: Any = None, lower: bool = False) -> ResyncResult:
    """Move one sequence just past its column's MAX, holding a writer-blocking lock.

    Forward only unless ``lower`` is true, in which case it only ever lowers a
    sequence that is ahead of its data (closing the gap). Raises
    ``SequenceNotFound`` for bad input and a ``ResyncRefused`` (``TableBusy``
    when the lock times out, ``NotPermitted``, ``OutOfRange``) when the
    database can't or won't; in every case nothing is changed. Every change
    is recorded.
    """
    model, link = find(alias, label, column)
    _check_comparable(link, lower)
    _check_readable(link)
    backend = for_connection(connections[alias])
    assert backend is not None
    with writing(alias, ResyncRefused):
        before, after = backend.set_next(link, settings.LOCK_TIMEOUT_MS, lambda s: _target(link, s, lower))
        record_id = None
        if before != after:
            record_id = record_resync(alias, label, link, before, after, user=user, lowered=lower)
    if before != after and not lower:
        _announce(alias, label, link, before, after, user=user, record_id=record_id)
    info = collect_alias(alias, [model])
    row = next(i for i in info.sequences if i.column == column)
    return ResyncResult(info=row, value_before=before, value_after=after, record_id=record_id)


def _announce(
    alias: str, label: str, link: SequenceLink, before: int, after: int, *, user: Any, record_id: int | None
) -> None:
    """``fix_applied`` for a forward resync, once committed (the events room verifies it on its groups)."""
    detail = {"value_before": before, "value_after": after, "record": record_id}
    sequence = f"{link.sequence_schema}.{link.sequence}"

    def send() -> None:
        signals.fix_applied.send_robust(
            sender=SequenceResync,
            kind="resync",
            database=alias,
            model=label,
            column=link.column,
            sequence=sequence,
            user=user,
            at=timezone.now(),
            detail=detail,
        )

    transaction.on_commit(send, using=alias)
