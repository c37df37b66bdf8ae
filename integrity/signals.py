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
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["fix_applied"]

fix_applied = Signal()
