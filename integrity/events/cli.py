"""``manage.py integrity events`` and ``integrity prune``: recorded IntegrityErrors from the command line.

``events [--since 24h] [--database ALIAS] [--kind KIND] [--state open] [--json]``
lists the event groups last seen within the window, newest first, with their
state and cause (``integrity.events.explain``); ``--state`` takes
``unresolved``, ``regressed``, ``resolved``, ``ignored`` (comma-separated),
``open`` (the default: unresolved and regressed) or ``all``; ``events --group ID``
shows one group: its cause and where in the project's code it came from. ``prune --older-than 30d [--dry-run]
[--json]`` removes old samples and the groups left empty that were not seen
since (``integrity.events.retention``).

Durations are a whole number and a unit: ``30m``, ``24h``, ``7d``, ``2w``
(``--since`` also takes ``all``).

Exit status: 0 when done (finding events is not a failure: ``events`` is a
report; its ``--json`` is for scripts that decide), 2 on bad arguments (a
duration, database alias or kind it does not know), in which case nothing
is read or changed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import CommandError, OutputWrapper
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router
from django.utils import timezone

from integrity import reads
from integrity.cli import UsageError, counted, format_table, resolve_database
from integrity.events import causes, lifecycle, locations, retention, violations
from integrity.events import explain as explaining
from integrity.models import EventGroup

KINDS = (
    violations.UNIQUE,
    violations.FOREIGN_KEY,
    violations.NOT_NULL,
    violations.CHECK,
    violations.EXCLUSION,
    violations.SEQUENCE_LIMIT,
    violations.OUT_OF_RANGE,
    violations.UNKNOWN,
)
STATE_CHOICES = ("open", *lifecycle.STATES, "all")  # open: unresolved and regressed


class KindChoices(tuple[str, ...]):
    """The kinds, as argparse shows them in ``--help`` and the usage line (``{unique,foreign-key,…}``).

    Membership is left to :func:`parse_kind`, which also takes ``foreign key``
    and ``foreign_key`` and refuses anything else with exit status 2 and the
    known kinds, from the shell and from ``call_command`` alike (argparse's
    own refusal would be exit status 1 there).
    """

    def __contains__(self, value: object) -> bool:
        return True


UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
COLUMNS = [
    ("last_seen", "LAST SEEN"),
    ("count", "COUNT"),
    ("handled", "HANDLED"),
    ("state", "STATE"),
    ("kind", "KIND"),
    ("model", "MODEL"),
    ("target", "CONSTRAINT/TABLE"),
    ("database", "DATABASE"),
    ("cause", "CAUSE"),
]


def add_parsers(sub: Any) -> None:
    """The ``events`` and ``prune`` sub-parsers (``sub`` is the command's sub-parsers action)."""
    e = sub.add_parser("events", help="IntegrityError event groups seen recently, newest first.")
    e.add_argument("--since", default="24h", help="Last seen within: 30m, 24h (default), 7d, 2w or all.")
    e.add_argument("--database", default=None, metavar="ALIAS", help="Only errors raised on this database.")
    e.add_argument(
        "--kind",
        default=None,
        choices=KindChoices(k.replace(" ", "-") for k in KINDS),
        help="Only this kind (foreign-key, foreign_key and 'foreign key' all work).",
    )
    e.add_argument(
        "--state",
        default="open",
        help="Only groups in these states, comma-separated: unresolved, regressed, resolved, ignored; "
        "open (default: unresolved and regressed) or all.",
    )
    e.add_argument(
        "--group",
        default=None,
        metavar="ID",
        help="One group (its id, as on its page): its cause and where in the code it came from.",
    )
    e.add_argument("--json", action="store_true", help="Print a JSON list instead of a table.")
    p = sub.add_parser("prune", help="Remove old event samples and the groups left empty and not seen since.")
    # Checked by the sub-command rather than argparse, so a missing value exits 2 from call_command too.
    p.add_argument("--older-than", default=None, metavar="DURATION", help="Required: 30d, 12h, 2w, ….")
    p.add_argument("--dry-run", action="store_true", help="Count what would be removed; remove nothing.")
    p.add_argument("--json", action="store_true", help="Print a JSON object.")
    e.set_defaults(handler=events_command)
    p.set_defaults(handler=prune_command)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def parse_duration(text: str, *, allow_all: bool = False) -> timedelta | None:
    """``30m``/``24h``/``7d``/``2w`` as a timedelta; ``all`` (when allowed) as None. Bad text: exit 2."""
    if allow_all and text.strip().lower() == "all":
        return None
    match = _DURATION.match(text)
    if match is None:
        accepted = "30m, 24h, 7d, 2w" + (" or all" if allow_all else "")
        raise UsageError(f"Bad duration {text!r}: use a whole number and a unit, such as {accepted}.")
    try:
        delta = timedelta(**{UNITS[match.group(2).lower()]: int(match.group(1))})
        timezone.now() - delta  # the cutoff must be a date too
    except OverflowError:
        raise UsageError(f"Duration {text.strip()!r} is too long: it reaches before the year 1.") from None
    return delta


def parse_states(text: str) -> list[str] | None:
    """``--state``: the states asked for; None for all. Unknown names: exit 2."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STATE_CHOICES]
    if unknown or not names:
        raise UsageError(f"Unknown state {text!r}; known: {', '.join(STATE_CHOICES)}.")
    if "all" in names:
        return None
    states = {s for n in names for s in (lifecycle.OPEN if n == "open" else (n,))}
    return [s for s in lifecycle.STATES if s in states]


def parse_kind(text: str | None) -> str | None:
    """A kind as stored (``foreign key``); ``foreign-key`` and ``foreign_key`` are accepted too."""
    if text is None:
        return None
    kind = re.sub(r"[-_\s]+", " ", text.strip().lower())
    if kind not in KINDS:
        raise UsageError(f"Unknown kind {text!r}; known: {', '.join(KINDS)}.")
    return kind


# ---------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------


def group_json(group: EventGroup, cause: str, code: str) -> dict[str, Any]:
    """Every field of the group, by name, plus its cause (``cause``, and ``cause_code`` from explain).

    Datetimes are full ``isoformat()`` (DjangoJSONEncoder would cut them to
    milliseconds), so a script can compare ``last_seen`` with what it saw before.
    """
    data = {f.attname: getattr(group, f.attname) for f in EventGroup._meta.concrete_fields}
    data = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}
    return {**data, "state": lifecycle.state_of(group), "cause": cause, "cause_code": code}


def _row(group: EventGroup, cause: str) -> dict[str, Any]:
    return {
        "last_seen": timezone.localtime(group.last_seen).strftime("%Y-%m-%d %H:%M:%S"),
        "count": group.count,
        "handled": group.handled_count,
        "state": lifecycle.state_of(group),
        "kind": group.kind,
        "model": group.model or None,
        "target": group.constraint or group.table or None,
        "database": group.database,
        "cause": cause or None,
    }


def _window(since: timedelta | None, text: str) -> str:
    return "ever" if since is None else f"in the last {text.strip()}"


LOCATION_COLUMNS = [("count", "COUNT"), ("where", "WHERE"), ("function", "FUNCTION"), ("code", "SOURCE LINE")]


def parse_group(text: str) -> int:
    """``--group``: a group's id. Not a positive number: exit 2."""
    raw = text.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise UsageError(f"Bad group id {text!r}: use the number on the group's page (?id=…).")
    return int(raw)


def group_command(options: dict[str, Any], stdout: OutputWrapper) -> None:
    """``integrity events --group ID``: one group, its cause, and its top locations in the project's code."""
    pk = parse_group(options["group"])
    alias = router.db_for_read(EventGroup)
    try:
        with reads.bounded(alias):
            group = EventGroup.objects.using(alias).filter(pk=pk).first()
            explanation = explaining.explain_many([group], keep=False)[0] if group is not None else None
    except reads.ReadBusy as exc:
        raise CommandError(f"The events could not be read: {exc}.", returncode=1) from exc
    if group is None or explanation is None:
        raise UsageError(f"There is no event group {pk} (it may have been deleted).")
    causes.keep([(group, explanation)])
    cause, code = str(explanation.cause), str(explanation.code)
    if options["json"]:
        # The counter as a list, busiest first, as the text below shows it.
        payload = {**group_json(group, cause, code), "top_locations": locations.top(group.locations)}
        stdout.write(json.dumps(payload, indent=2, cls=DjangoJSONEncoder))
        return
    row = _row(group, cause)
    stdout.write(
        f"{group.kind} violation: {row['target'] or '-'}"
        + (f" ({group.model})" if group.model else "")
        + f" on {group.database}, {counted('%(n)s error', '%(n)s errors', group.count)}, {row['state']}, "
        f"last seen {row['last_seen']}."
    )
    stdout.write(f"Cause: {cause}.")
    top = locations.top(group.locations)
    if not top:
        stdout.write("Where in the code: no frame of the project's own code was recorded.")
        return
    stdout.write("Where in the code (the project's innermost frame, busiest first):")
    rows = [{**loc, "where": f"{loc['file']}:{loc['line']}"} for loc in top]
    stdout.write(format_table(rows, LOCATION_COLUMNS, numbers=("count",)))


def events_command(options: dict[str, Any], stdout: OutputWrapper, stderr: OutputWrapper) -> None:
    """``integrity events``: the groups last seen within ``--since``, newest first, with their cause."""
    if options.get("group") is not None:
        group_command(options, stdout)
        return
    since = parse_duration(options["since"], allow_all=True)
    kind = parse_kind(options["kind"])
    states = parse_states(options.get("state") or "open")
    alias = resolve_database(options["database"])
    groups = EventGroup.objects.using(router.db_for_read(EventGroup)).order_by("-last_seen", "-id")
    if since is not None:
        groups = groups.filter(last_seen__gte=timezone.now() - since)
    if kind is not None:
        groups = groups.filter(kind=kind)
    if alias is not None:
        groups = groups.filter(database=alias)
    if states is not None:
        groups = lifecycle.with_states(groups, states)
    found = []
    try:
        with reads.bounded(router.db_for_read(EventGroup)):
            listed = list(groups)
            explained = explaining.explain_many(listed, keep=False)  # kept below: this block rolls back
            for group, explanation in zip(listed, explained, strict=True):
                found.append((group, str(explanation.cause), str(explanation.code), explanation))
    except reads.ReadBusy as exc:
        raise CommandError(f"The events could not be read: {exc}.", returncode=1) from exc
    causes.keep((g, e) for g, _c, _k, e in found)
    if options["json"]:
        payload = [group_json(g, cause, code) for g, cause, code, _e in found]
        stdout.write(json.dumps(payload, indent=2, cls=DjangoJSONEncoder))
        return
    stdout.write(format_table([_row(g, cause) for g, cause, _k, _e in found], COLUMNS, numbers=("count",)))
    total = sum(g.count for g, _c, _k, _e in found)
    shown = counted("%(n)s group", "%(n)s groups", len(found))
    errors = counted("%(n)s error", "%(n)s errors", total)
    stdout.write(f"{shown} seen {_window(since, options['since'])}, {errors}.")


# ---------------------------------------------------------------------------
# prune
# ---------------------------------------------------------------------------


def prune_json(result: retention.PruneResult) -> dict[str, Any]:
    return {
        "samples": result.samples,
        "groups": result.groups,
        "reset": result.reset,
        "cutoff": result.cutoff.isoformat() if result.cutoff else None,
        "dry_run": result.dry_run,
    }


def _when(moment: datetime | None) -> str:
    return "" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def prune_command(options: dict[str, Any], stdout: OutputWrapper, stderr: OutputWrapper) -> None:
    """``integrity prune``: remove samples older than ``--older-than`` and the groups left empty."""
    if options["older_than"] is None:
        raise UsageError("--older-than is required, such as --older-than 30d.")
    older_than = parse_duration(options["older_than"])
    assert older_than is not None  # "all" is not allowed here
    try:
        result = retention.prune(older_than, dry_run=options["dry_run"])
    except retention.PruneBusy as exc:
        raise CommandError(f"Nothing was pruned: {exc}", returncode=1) from exc
    if options["json"]:
        stdout.write(json.dumps(prune_json(result), indent=2, cls=DjangoJSONEncoder))
        return
    verb = "Would remove" if result.dry_run else "Removed"
    stdout.write(
        f"{verb} {counted('%(n)s sample', '%(n)s samples', result.samples)} recorded before "
        f"{_when(result.cutoff)} and {counted('%(n)s group', '%(n)s groups', result.groups)} "
        f"left without samples and not seen since."
    )
    if result.reset:
        verb = "would get" if result.dry_run else "got"
        remaining = counted("%(n)s remaining group", "%(n)s remaining groups", result.reset)
        stdout.write(f"{remaining} {verb} their samples counter set to the samples left.")
