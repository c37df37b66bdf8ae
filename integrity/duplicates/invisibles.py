"""Characters a page cannot show, made visible: where duplicates differ only by them, the admin must see it.

" Acme Ltd" and "Acme Ltd" render alike in HTML (a leading space is
collapsed), so do a non-breaking space and a space, a zero-width space and
nothing, a precomposed "é" and "e" + a combining accent. Each such character
becomes a marker in a ``<span class="integrity-invisible">`` whose title names
it: ``␣`` for a space that HTML would collapse or that is easy to miss
(leading, trailing, repeated), ``⇥`` a tab, ``↵`` a line break, and
``<U+XXXX>`` for every other invisible or look-alike character. Everything
else is escaped as usual.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SYMBOLS = {" ": "␣", "\t": "⇥", "\n": "↵", "\r": "↵"}
CONTROL_NAMES = {"\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN"}  # unicodedata names no control
# Letters, digits, punctuation and symbols show themselves; so does a single space between words.
VISIBLE = ("L", "N", "P", "S")
SPACES_TO_MARK = re.compile(r"^ +| +$| {2,}")


def _name(char: str) -> str:
    return unicodedata.name(char, f"U+{ord(char):04X}")


def _symbol(char: str) -> str:
    return SYMBOLS.get(char, f"<U+{ord(char):04X}>")


def _needs_marker(char: str, non_nfc: bool) -> bool:
    category = unicodedata.category(char)
    if category.startswith("M"):
        # A combining mark is visible on its letter; it only needs pointing out where the text is
        # not in its composed form (NFC), i.e. where it would compare unequal to the same word composed.
        return non_nfc
    return char in "\t\n\r" or not category.startswith(VISIBLE)


def _pieces(value: str) -> Iterator[tuple[str, bool]]:
    """Each character of ``value`` and whether it is shown as a marker."""
    non_nfc = not unicodedata.is_normalized("NFC", value)
    spaces = {i for m in SPACES_TO_MARK.finditer(value) for i in range(m.start(), m.end())}
    for i, char in enumerate(value):
        yield char, (i in spaces if char == " " else _needs_marker(char, non_nfc))


def marked(value: str) -> SafeString:
    """``value`` escaped, with every invisible or look-alike character replaced by a labelled marker."""
    parts = []
    for char, mark in _pieces(value):
        if mark:
            code = f"U+{ord(char):04X}"
            title = escape(f"{code} {unicodedata.name(char, CONTROL_NAMES.get(char, ''))}".strip())
            parts.append(f'<span class="integrity-invisible" title="{title}">{escape(_symbol(char))}</span>')
        else:
            parts.append(escape(char))
    return mark_safe("".join(parts))  # noqa: S308 - every character is escaped or a fixed marker


def plain(value: str) -> str:
    """The text of :func:`marked` without its HTML: what a reader of the page sees."""
    return "".join(_symbol(char) if mark else char for char, mark in _pieces(value))
