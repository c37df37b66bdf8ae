"""Signals the rooms send for the others to hear, so that no room imports the one that listens.

``fix_applied`` is sent once a fix the events pages may have offered is
committed: a resync that moved a sequence forward (by
``integrity.sequences.service.resync``) or a merge of a rule's duplicates
(by ``integrity.merge.execute.merge``). Its keyword arguments:

- ``kind``: ``"resync"`` or ``"merge"``;
- ``database``: the alias the fix changed;
- ``model``: the model's label (``shop.Product``);
- ``column`` and ``sequence`` (resync), ``rule`` (merge: the ``Rule.key``);
- ``user``: who applied it (None from the command line);
- ``at``: when (an aware datetime);
- ``detail``: a JSON-able dict (values before and after, the record's id).

The events room (``integrity.events.fixes``) records the fix on the groups
it explains, to verify it against the occurrences that follow.

``event_group_alert`` is sent when a group of recorded errors is new (its
first occurrence) or regressed (it occurred again after it was resolved),
once the occurrence is committed (``transaction.on_commit`` on the events
database), by ``integrity.events.notify``; a receiver that raises is logged,
never raised into the request. ``sender`` is ``EventGroup``; its keyword
arguments:

- ``group``: the ``EventGroup`` (count, state, constraint, model, message…);
- ``kind``: ``"new"`` or ``"regressed"``;
- ``event``: the ``Event`` sample kept of this occurrence, or None when the
  group's sample slots are full (``INTEGRITY_EVENT_SAMPLES``).

The app's own receiver e-mails ``ADMINS`` when ``INTEGRITY_NOTIFY_EMAIL`` is on.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["event_group_alert", "fix_applied"]

fix_applied = Signal()
event_group_alert = Signal()
