"""The small interface a vendor backend implements, and the rows it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from django.utils.translation import gettext as _


class ResyncRefused(Exception):
    """A resync could not be made and nothing was changed; ``str()`` says why."""


class TableBusy(ResyncRefused):
    """The table lock a resync needs could not be had within the lock timeout."""

    def __init__(self, table: str) -> None:
        super().__init__(_("Table %(table)s is busy, try again.") % {"table": table})
        self.table = table


class NotPermitted(ResyncRefused):
    """The database user may not read or change the table or the sequence."""


class OutOfRange(ResyncRefused, ValueError):
    """The value the sequence would need lies outside its MINVALUE..MAXVALUE."""


class NotComparable(ResyncRefused):
    """The sequence feeds a column whose values can't be compared with it (not an integer, or an expression)."""


@dataclass(frozen=True)
class Feed:
    """One column a sequence feeds, in any table of the database (model or not)."""

    schema: str
    table: str
    column: str
    column_type: str
    integer: bool  # of an integer type (or a domain over one)
    expression: str | None  # its default when that is more than the sequence's nextval() alone
    readable: bool
    own: bool  # the link's own column

    @property
    def comparable(self) -> bool:
        """Whether the column's MAX says anything about the sequence: integers from nextval() alone."""
        return self.integer and self.expression is None


@dataclass(frozen=True)
class SequenceLink:
    """A sequence that feeds one column of one table, as the catalog says."""

    ref: int  # index of the table in the list passed to ``links``
    schema: str
    table: str
    column: str
    column_type: str
    sequence_schema: str
    sequence: str
    sequence_type: str
    start: int
    increment: int
    min_value: int
    max_value: int
    kind: str  # "identity", "serial", "owned" (OWNED BY only) or "default" (nextval)
    sequence_readable: bool
    column_readable: bool
    # The vendor's own handle on the sequence (PostgreSQL: its OID), so
    # ``states`` can read it without a name lookup.
    sequence_id: int | None = None
    # Every column the sequence feeds, this one included (empty: this one only, comparable).
    feeds: tuple[Feed, ...] = ()

    @property
    def own(self) -> Feed:
        """This link's own column as a feed."""
        mine = [f for f in self.feeds if f.own]
        if mine:
            return mine[0]
        return Feed(
            self.schema, self.table, self.column, self.column_type, True, None, self.column_readable, True
        )

    @property
    def others(self) -> list[Feed]:
        """The other columns the same sequence feeds."""
        return [f for f in self.feeds if not f.own]

    @property
    def compared(self) -> list[Feed]:
        """The columns whose MAX the sequence must stay past (the comparable ones), own column first."""
        return [f for f in [self.own, *self.others] if f.comparable]

    @property
    def extremes_readable(self) -> bool:
        return all(f.readable for f in self.compared)


@dataclass(frozen=True)
class SequenceState:
    """What a sequence and its column hold right now."""

    last_value: int | None
    is_called: bool | None
    column_extreme: int | None  # MAX (MIN for descending sequences) of the column


# Links per status statement (``SequenceBackend.states``). One UNION ALL arm per link: past about 5,000 arms PostgreSQL's
# parser runs out of stack ("stack depth limit exceeded"); planning also grows faster than
# linearly with the arms. 500 keeps each statement small and the number of statements low.
STATES_CHUNK = 500


class SequenceBackend(Protocol):
    """What the sequence service needs from a database vendor."""

    def links(self, tables: Sequence[str]) -> list[SequenceLink]:
        """Return every sequence feeding a column of ``tables`` (one query)."""

    def states(self, links: Sequence[SequenceLink]) -> list[SequenceState]:
        """Return the state of every link, in order (one query per ``STATES_CHUNK`` links)."""

    def locked(self, relations: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``relations`` (schema, name) another transaction holds so that a read would wait."""

    def statements(self, link: SequenceLink, target: int) -> list[str]:
        """The statements ``set_next`` runs to move the sequence to ``target``, values inlined (the pages show them)."""

    def set_next(self, link: SequenceLink, lock_timeout_ms: int, choose: ChooseNext) -> tuple[int, int]:
        """Lock the table against writers, then move the sequence.

        ``choose(state)`` returns the next value to set, or ``None`` to leave
        it. Returns ``(next before, next after)``. Must run inside a
        transaction; raises ``TableBusy`` if the lock is not granted in time.
        """


class ChooseNext(Protocol):
    def __call__(self, state: SequenceState) -> int | None: ...
