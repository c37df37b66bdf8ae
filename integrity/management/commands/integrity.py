"""``manage.py integrity <sub-command>``: the app's checks for CI and cron, and its repairs.

A dispatcher: each room's ``cli.py`` adds its sub-commands and names their
handlers (:mod:`integrity.sequences.cli`, :mod:`integrity.duplicates.cli`,
:mod:`integrity.merge.cli`, :mod:`integrity.events.cli`; exit status: see
there). Everywhere: 0 when all is well, 1 when a problem was found (and not
fixed), 2 on bad arguments, in which case nothing is done.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrity.duplicates import cli as duplicates
from integrity.events import cli as events
from integrity.merge import cli as merge
from integrity.sequences import cli as sequences


class Command(BaseCommand):
    help = (
        "Data-integrity checks: 'integrity sequences' reports (and with --fix resyncs) sequences; "
        "'integrity duplicates' checks every uniqueness rule and finds the rows that break it; "
        "'integrity enforce' builds the index of a rule whose duplicates are gone; "
        "'integrity merge' merges duplicate rows (preview, record) and 'integrity undo' puts them back; "
        "'integrity events' lists recorded IntegrityErrors and 'integrity prune' removes old ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(
            dest="subcommand", required=True, metavar="{sequences,duplicates,enforce,merge,undo,events,prune}"
        )
        for room in (sequences, duplicates, merge, events):
            room.add_parsers(sub)
        for sub_parser in sub.choices.values():
            # Django's --no-color / --force-color, also after the sub-command (``integrity sequences
            # --no-color``); SUPPRESS keeps a sub-parser from overriding what came before it.
            sub_parser.add_argument(
                "--no-color",
                action="store_true",
                default=argparse.SUPPRESS,
                help="Don't colorize the output.",
            )
            sub_parser.add_argument(
                "--force-color",
                action="store_true",
                default=argparse.SUPPRESS,
                help="Colorize the output anyway.",
            )

    def handle(self, *args: Any, handler: Any, **options: Any) -> None:
        handler(options, self.stdout, self.stderr)
