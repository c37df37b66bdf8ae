"""What the sequences pages read from the query string, as Django forms."""

from __future__ import annotations

from integrity.pages import FilterForm, text_field

__all__ = ["SequenceFilterForm"]


class SequenceFilterForm(FilterForm):
    """The sequences page's filters; any value is accepted (one that matches nothing shows no sequence).

    ``status`` is a status or ``problem``; ``capacity`` a level or ``warning``
    (warning and critical). Without ``show=all`` (and without a status chosen)
    only the sequences that need action are listed.
    """

    status = text_field()
    app = text_field()
    database = text_field()
    capacity = text_field()
    show = text_field()
    q = text_field()  # the search: every word in the model, table, column or sequence name
