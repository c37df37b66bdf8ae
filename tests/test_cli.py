"""integrity.cli.format_table: the plain-text tables the command prints."""

from integrity.cli import format_table

COLUMNS = [("name", "NAME"), ("count", "COUNT"), ("share", "SHARE"), ("flag", "FLAG")]


def column_starts(header: str, titles: list[str]) -> list[int]:
    return [header.index(title) for title in titles]


def test_header_then_rule_then_one_line_per_row():
    text = format_table([{"name": "a", "count": 1}, {"name": "b", "count": 2}], COLUMNS)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["NAME", "COUNT", "SHARE", "FLAG"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split()[:2] == ["a", "1"]
    assert lines[3].split()[:2] == ["b", "2"]


def test_cells_start_under_their_header():
    rows = [
        {"name": "shop.Product", "count": 8, "share": 0.5, "flag": True},
        {"name": "x", "count": 123456789, "share": 0.123, "flag": False},
    ]
    lines = format_table(rows, COLUMNS).splitlines()
    starts = column_starts(lines[0], ["NAME", "COUNT", "SHARE", "FLAG"])
    assert starts[0] == 0
    expected = [["shop.Product", "8", "50.0%", "yes"], ["x", "123456789", "12.3%", "no"]]
    for line, row in zip(lines[2:], expected, strict=True):
        for start, cell in zip(starts, row, strict=True):
            assert line[start:].startswith(cell), (line, start, cell)
            assert start == 0 or line[start - 2 : start] == "  ", (line, start)


def test_columns_widen_to_the_longest_cell_and_rule_matches():
    lines = format_table([{"name": "a-very-long-model-name"}], [("name", "N"), ("count", "C")]).splitlines()
    assert lines[0] == "N" + " " * (len("a-very-long-model-name") - 1) + "  C"
    assert lines[1] == "-" * len("a-very-long-model-name") + "  -"
    assert lines[2] == "a-very-long-model-name  -"


def test_cell_rendering_of_none_bool_float_and_int():
    lines = format_table(
        [{"name": None, "count": 0, "share": 0.9080401, "flag": False}, {"flag": True, "share": 1.0}],
        COLUMNS,
    ).splitlines()
    assert lines[2].split() == ["-", "0", "90.8%", "no"]
    assert lines[3].split() == ["-", "-", "100.0%", "yes"]


def test_no_trailing_whitespace():
    lines = format_table([{"name": "a"}, {"name": "bbbbbbbbbb", "flag": True}], COLUMNS).splitlines()
    assert all(line == line.rstrip() for line in lines)


def test_no_rows_gives_header_and_rule_only():
    assert format_table([], [("a", "ALPHA"), ("b", "B")]).splitlines() == ["ALPHA  B", "-----  -"]


def test_unknown_keys_are_ignored_and_missing_keys_show_a_dash():
    text = format_table([{"name": "n", "extra": "hidden"}], [("name", "NAME"), ("count", "COUNT")])
    assert "hidden" not in text
    assert text.splitlines()[2] == "n     -"
