"""``manage.py integrity merge`` and ``integrity undo``: merge duplicate rows from the command line.

``merge app_label.Model --keep PK --remove PK…`` merges one group (preview
with ``--dry-run``); ``merge app_label.Model --rule RULE --all --survivor
POLICY`` merges every group of a rule, each in its own transaction and
``MergeRecord``; ``undo RECORD_ID`` puts a merge back. What they print (text
or ``--json``) is rendered by :mod:`integrity.merge.report`.

Exit status (nothing is changed unless it is 0, except by a stopped ``--all``):

- 0: merged, undone, or a dry run with nothing left to choose.
- 1: refused by the data, or a decision is needed: conflicts between child
  rows that carry their own data (listed, with the ``--keep-child`` to pass),
  rows that do not exist (any more), data changed or locked during the
  command, an undo that is refused (already undone, or later changes make an
  exact restore impossible); also a ``--all`` run that was stopped (Ctrl-C) or
  had to skip a group: its finished merges stay, each complete.
- 2: bad arguments: unknown model, database, rule or merge record; options
  that do not go together; a value that is not a primary key; rows that are
  not duplicates of each other under the rule (without ``--rule``: under any
  rule of the model); a field, row or conflict id that is not part of the
  merge. What was typed can never succeed as it is.

``--all`` is all-or-nothing when it plans: every group is planned first and,
if any one needs a choice, all of them are listed and nothing is merged. A
command line cannot take a choice per group, and a rule half merged by policy
is harder to review than one not merged at all. Once planning passes, groups
are merged one by one; Ctrl-C stops between two groups (a second Ctrl-C
interrupts the group being merged, whose transaction is then rolled back).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, OutputWrapper
from django.db import connections, router
from django.db.models import Model

from integrity.cli import UsageError, resolve_database, resolve_model
from integrity.duplicates import enforcement
from integrity.duplicates import service as duplicates
from integrity.duplicates.rules import Rule, rules_for
from integrity.merge import bulk as merge_all
from integrity.merge import execute as merge
from integrity.merge import plan as merge_plan
from integrity.merge import undo as merge_undo
from integrity.merge.exceptions import BadChoice, MergeRefused, NotDuplicates
from integrity.merge.plan import Plan
from integrity.merge.report import (
    dumps,
    plans_json,
    plans_lines,
    preview_json,
    preview_lines,
    record_json,
    result_json,
    result_lines,
    undo_hint,
    undone_line,
)
from integrity.models import MergeRecord

SCAN_PAGE = 500  # groups read per statement when --all plans every group


def refused(exc: MergeRefused) -> CommandError:
    """The service's refusal as the command's: 2 when the arguments are wrong, 1 when the data says no."""
    return CommandError(str(exc), returncode=2 if isinstance(exc, BadChoice | NotDuplicates) else 1)


def add_parsers(sub: Any) -> None:
    """The ``merge`` and ``undo`` sub-parsers (``sub`` is the command's sub-parsers action)."""
    m = sub.add_parser("merge", help="Merge duplicate rows into one survivor (--dry-run: preview only).")
    m.add_argument("model", metavar="app_label.Model")
    m.add_argument("--keep", metavar="PK", help="The row that stays.")
    m.add_argument("--remove", nargs="+", action="extend", default=[], metavar="PK")
    m.add_argument("--rule", help="Rule name (configured:email, unique:vat_number, …) or full key.")
    m.add_argument("--database", default=None, metavar="ALIAS", help="Default: 'default'.")
    m.add_argument("--all", action="store_true", help="Merge every group of --rule.")
    m.add_argument("--survivor", choices=duplicates.POLICIES, help="Which row of each group stays (--all).")
    m.add_argument("--dry-run", action="store_true", help="Show what would happen; change nothing.")
    m.add_argument("--json", action="store_true", help="Print a JSON object instead of tables.")
    m.add_argument("--keep-child", nargs="+", action="extend", default=[], metavar="CONFLICT_ID=PK")
    m.add_argument("--take", nargs="+", action="extend", default=[], metavar="FIELD=PK")
    u = sub.add_parser("undo", help="Undo a merge, from its merge record.")
    u.add_argument("record", metavar="RECORD_ID")
    u.add_argument("--json", action="store_true", help="Print a JSON object.")
    m.set_defaults(handler=merge_command)
    u.set_defaults(handler=undo_command)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------


def _rules(model: type[Model], alias: str | None) -> list[Rule]:
    resolve_database(alias)
    vendor = connections[alias or "default"].vendor
    if vendor != "postgresql":
        raise UsageError(
            f"merge is not available for {vendor} databases ({alias or 'default'}): PostgreSQL only."
        )
    try:
        return rules_for([alias] if alias else None, [model])
    except ImproperlyConfigured as exc:
        raise UsageError(str(exc)) from exc


def _named_rule(model: type[Model], name: str, alias: str | None) -> Rule:
    """``--rule``: a full key, else a rule name on ``alias`` (default ``default``)."""
    found = _rules(model, alias)
    for rule in found:
        if rule.key == name:
            return rule
    for rule in found:
        if rule.name == name and rule.database == (alias or "default"):
            return rule
    names = sorted({r.name for r in found if r.database == (alias or "default")})
    known = f"; its rules: {', '.join(names)}" if names else ""
    raise UsageError(f"{model._meta.label} has no rule {name!r} on {alias or 'default'}{known}.")


def _guess_rule(model: type[Model], alias: str, keep: str, remove: Sequence[str]) -> Rule:
    """The first rule under which every given row is a duplicate of the others; not enforced ones first."""
    found = _rules(model, alias)
    if not found:
        raise UsageError(f"{model._meta.label} has no uniqueness rule on {alias}.")
    states = enforcement.classify(found)
    ordered = sorted(found, key=lambda r: states[r.key].state == enforcement.ENFORCED)
    keep_pk, remove_pks = _pks(ordered[0], keep, remove)
    for rule in ordered:
        try:
            merge_plan.load_members(rule, keep_pk, remove_pks)
        except NotDuplicates:
            continue
        except MergeRefused as exc:
            raise refused(exc) from exc
        return rule
    rows = ", ".join(map(str, [keep_pk, *remove_pks]))
    raise UsageError(
        f"{model._meta.label} rows {rows} are not duplicates of each other under any of its rules "
        f"({', '.join(r.name for r in ordered)}); pass --rule."
    )


def _pks(rule: Rule, keep: str, remove: Sequence[str]) -> tuple[Any, list[Any]]:
    try:
        return merge_plan.to_pk(rule, keep), [merge_plan.to_pk(rule, raw) for raw in remove]
    except BadChoice as exc:
        raise refused(exc) from exc


def _pairs(values: Sequence[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, pk = value.partition("=")
        if not sep or not name or not pk:
            raise UsageError(f"{option} takes NAME=PK, not {value!r}.")
        pairs[name] = pk
    return pairs


def _check_options(options: dict[str, Any]) -> None:
    if options["all"]:
        extra = [o for o in ("keep", "remove", "keep_child", "take") if options[o]]
        if extra:
            names = ", ".join("--" + o.replace("_", "-") for o in extra)
            raise UsageError(f"--all merges every group by --survivor: {names} cannot be used with it.")
        if not options["rule"] or not options["survivor"]:
            raise UsageError("--all needs --rule RULE and --survivor " + "|".join(duplicates.POLICIES) + ".")
    else:
        if options["survivor"]:
            raise UsageError("--survivor chooses the row to keep with --all; use --keep PK otherwise.")
        if not options["keep"] or not options["remove"]:
            raise UsageError("Name the rows: --keep PK --remove PK [PK ...] (or --all --survivor POLICY).")


def _needs_choice(count: int) -> CommandError:
    what = "1 conflict needs" if count == 1 else f"{count} conflicts need"
    return CommandError(
        f"{what} a choice: pass --keep-child CONFLICT_ID=PK for each; nothing was changed.", returncode=1
    )


# ---------------------------------------------------------------------------
# Sub-commands
# ---------------------------------------------------------------------------


def merge_command(options: dict[str, Any], stdout: OutputWrapper, stderr: OutputWrapper) -> None:
    """``integrity merge``: one group (``--keep``/``--remove``) or every group of a rule (``--all``)."""
    _check_options(options)
    model = resolve_model(options["model"])
    alias = options["database"]
    if options["all"]:
        rule = _named_rule(model, options["rule"], alias)
        merge_every_group(rule, options, stdout, stderr)
        return
    keep, remove = options["keep"], options["remove"]
    if options["rule"]:
        rule = _named_rule(model, options["rule"], alias)
    else:
        rule = _guess_rule(model, alias or "default", keep, remove)
    survivor, dups = _pks(rule, keep, remove)
    fields = {name: _pks(rule, pk, [])[0] for name, pk in _pairs(options["take"], "--take").items()}
    choices = _pairs(options["keep_child"], "--keep-child")
    try:
        plan = merge_plan.build_plan(rule, survivor, dups, fields=fields, resolutions=choices)
        unknown = sorted(set(choices) - {c.id for c in plan.conflicts})
        if unknown:
            raise UsageError(f"No conflict {', '.join(unknown)} in this merge (see --dry-run).")
        if options["dry_run"] or plan.unresolved:
            _write_preview(plan, options["json"], options["dry_run"], stdout)
            if plan.unresolved:
                raise _needs_choice(len(plan.unresolved))
            return
        record = merge.merge(rule, survivor, dups, fields=fields, resolutions=choices, token=plan.token)
    except MergeRefused as exc:
        raise refused(exc) from exc
    hint = undo_hint(record)
    if options["json"]:
        stdout.write(dumps({**preview_json(plan), "record": record_json(record)}))
        stderr.write(hint)
    else:
        stdout.write("\n".join(preview_lines(plan, done=True)))
        stdout.write(hint)


def _write_preview(plan: Plan, as_json: bool, dry_run: bool, stdout: OutputWrapper) -> None:
    if as_json:
        stdout.write(dumps({**preview_json(plan), "dry_run": dry_run}))
    else:
        stdout.write("\n".join(preview_lines(plan)))


def plan_every_group(rule: Rule, policy: str) -> list[Plan]:
    """A plan for every duplicate group of the rule, with the survivor ``policy`` picks."""
    plans = []
    offset = 0
    choose = merge_all.chooser(policy)
    while True:
        page = duplicates.scan(rule, limit=SCAN_PAGE, offset=offset, sample=duplicates.GROUP_LIMIT)
        for group in page.groups:
            plans.append(merge_plan.build_plan(rule, group.pks[0], group.pks[1:], choose=choose, group=False))
        offset += len(page.groups)
        if not page.groups or offset >= page.total_groups:
            return plans


def merge_every_group(
    rule: Rule, options: dict[str, Any], stdout: OutputWrapper, stderr: OutputWrapper
) -> None:
    """``--all``: plan every group; unless one needs a choice, merge them one transaction each."""
    policy, as_json = options["survivor"], options["json"]
    try:
        plans = plan_every_group(rule, policy)
    except (MergeRefused, duplicates.ScanTimedOut) as exc:
        raise CommandError(f"{rule.display_name}: {exc}", returncode=1) from exc
    unresolved = [p for p in plans if p.unresolved]
    head = plans_json(rule, policy, plans)
    if options["dry_run"] or unresolved:
        if as_json:
            stdout.write(dumps({**head, "dry_run": options["dry_run"]}))
        else:
            stdout.write("\n".join(plans_lines(rule, policy, plans)))
        if unresolved:
            raise _needs_choice(sum(len(p.unresolved) for p in plans))
        return
    verbose = options.get("verbosity", 1) >= 1
    # The planned groups, survivor first: each is re-read under its lock, the table not scanned again.
    groups = [
        duplicates.Group((), len(p.members), [p.survivor.pk, *(d.pk for d in p.duplicates)]) for p in plans
    ]
    result = _run_all(rule, policy, groups, stderr if verbose else None)
    head["dry_run"] = False
    if as_json:
        stdout.write(dumps({**head, **result_json(result)}))
    else:
        stdout.write("\n".join(result_lines(result)))
    if result.stopped or result.skipped:
        what = "stopped" if result.stopped else f"{len(result.skipped)} groups skipped"
        left = result.remaining if result.left is None else result.left
        raise CommandError(f"{what}: {result.made} groups merged, {left} left as they were.", returncode=1)


def _run_all(
    rule: Rule, policy: str, groups: list[duplicates.Group], stderr: OutputWrapper | None
) -> merge_all.MergeAllResult:
    """``merge_all`` of ``groups`` with progress on stderr; Ctrl-C stops it between groups."""
    total = len(groups)
    seen = merge_all.MergeAllResult(remaining=total)

    def progress(result: merge_all.MergeAllResult) -> None:
        nonlocal seen
        seen = result
        if stderr is not None:
            stderr.write(f"merged {result.made}/{total} groups")

    def stopping() -> None:
        if stderr is not None:
            stderr.write("stopping after this group (Ctrl-C again to interrupt it)…")

    with _stop_on_interrupt(stopping) as should_stop:
        try:
            return merge_all.merge_all(
                rule, policy, groups=groups, should_stop=should_stop, progress=progress
            )
        except KeyboardInterrupt:
            # Raised between two groups or inside one (rolled back): what finished is in `seen`.
            seen.stopped = True
            return seen
        except MergeRefused as exc:
            raise refused(exc) from exc


@contextmanager
def _stop_on_interrupt(on_first: Callable[[], None]) -> Iterator[Callable[[], bool]]:
    """The first SIGINT only asks to stop between groups; the next one raises ``KeyboardInterrupt``."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop.is_set
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        on_first()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def undo_command(options: dict[str, Any], stdout: OutputWrapper, stderr: OutputWrapper) -> None:
    """``integrity undo RECORD_ID``: put back what one merge changed."""
    raw = options["record"]
    db = router.db_for_read(MergeRecord)
    record = (
        MergeRecord.objects.using(db).filter(pk=int(raw)).first() if raw.isascii() and raw.isdigit() else None
    )
    if record is None:
        raise UsageError(f"No merge record {raw} (see the merge log in the admin).")
    try:
        record = merge_undo.undo(record)
    except MergeRefused as exc:
        raise CommandError(f"merge record {record.pk}: {exc}", returncode=1) from exc
    if options["json"]:
        stdout.write(dumps({**record_json(record), "model": record.model, "database": record.database}))
        return
    stdout.write(undone_line(record))
