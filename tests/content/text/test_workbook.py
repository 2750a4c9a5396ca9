"""A workbook read as one table text: shared strings resolved, first-row headers applied to
their columns, whatever the order of the parts and however their bytes are split."""

from __future__ import annotations

import bisect
import itertools
import random

import pytest

from sensor.content.fingerprint.base import TextChunk
from sensor.content.text.delimited import RowChunk
from sensor.content.text.workbook import Workbook

S = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
STRINGS = "xl/sharedStrings.xml"
SHEET1 = "xl/worksheets/sheet1.xml"
SHEET2 = "xl/worksheets/sheet2.xml"

# Item 3 is empty (it still takes its index); item 1 has a phonetic run that is no text.
SST = (
    f'<sst {S} count="6"><si><t>naam</t></si>'
    "<si><r><t>BSN</t></r><rPh><t>x</t></rPh></si>"
    "<si><t>de Vries</t></si><si><t/></si><si><t>Jansen</t></si>"
    "<si><r><t>ordernummer</t></r></si></sst>"
)
SHEET = (
    f"<worksheet {S}><sheetData>"
    '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
    '<c r="C1" t="inlineStr"><is><t>plaats</t></is></c></row>'
    '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2"><v>725763863</v></c>'
    '<c r="C2" t="inlineStr"><is><t>Delft</t></is></c></row>'
    '<row r="3"><c r="A3" t="s"><v>4</v></c><c r="C3" t="b"><v>1</v></c></row>'
    '<row r="5"><c r="B5"><v>12345678</v></c><c r="D5" t="str"><f>B5</f><v>x</v></c></row>'
    "</sheetData></worksheet>"
)
ORDERS = (
    f"<worksheet {S}><sheetData>"
    '<row r="1"><c r="A1" t="s"><v>5</v></c></row>'
    '<row r="2"><c r="A2"><v>633300498</v></c></row>'
    "</sheetData></worksheet>"
)


def read(
    parts: list[tuple[str, str]],
    workbook: Workbook | None = None,
    split: int | None = None,
    whole: bool = True,
) -> tuple[list[TextChunk], Workbook]:
    """Feed `parts` in order through their readers (each in pieces of `split` bytes)."""
    workbook = workbook if workbook is not None else Workbook()
    out: list[TextChunk] = []
    for name, text in parts:
        reader = workbook.part(name)
        assert reader is not None, name
        data = text.encode()
        step = split or len(data)
        for i in range(0, len(data), step):
            out += reader.feed(data[i : i + step])
        out += reader.finish()
        if whole:
            assert reader.anomalies == []
    out += workbook.finish()
    return out, workbook


def cells(chunk: TextChunk) -> list[tuple[str, str | None]]:
    """(cell text, its column header) of a row, the way the classifier finds them."""
    assert isinstance(chunk, RowChunk)
    starts = [*chunk.cells, len(chunk.text) + 1]
    result = []
    for k, (a, b) in enumerate(itertools.pairwise(starts)):
        header = None
        if chunk.headers is not None:
            column = bisect.bisect_right(chunk.cells, a)
            assert column == k + 1
            header = chunk.headers[k] if k < len(chunk.headers) else None
        result.append((chunk.text[a : b - 1], header))
    return result


def test_strings_resolved_and_headers_applied() -> None:
    out, workbook = read([(STRINGS, SST), (SHEET1, SHEET)])
    assert workbook.anomalies == []
    assert [(c.position.part, c.position.sheet, c.position.row) for c in out] == [
        (SHEET1, "sheet1", 1), (SHEET1, "sheet1", 2), (SHEET1, "sheet1", 3),
        (SHEET1, "sheet1", 5),
    ]  # fmt: skip
    assert cells(out[0]) == [("naam", None), ("BSN", None), ("plaats", None)]
    assert cells(out[1]) == [("de Vries", "naam"), ("725763863", "BSN"), ("Delft", "plaats")]
    assert cells(out[2]) == [("Jansen", "naam")]  # the boolean is left out
    # A sparse row: the 8-digit number sits in column B, under BSN; D has no header.
    assert cells(out[3]) == [("12345678", "BSN"), ("x", "")]
    assert [c.position.offset for c in out] == list(
        itertools.accumulate([0] + [len(c.text) for c in out[:-1]])
    )


@pytest.mark.parametrize("split", [None, 1, 7, 64])
def test_the_order_of_the_parts_does_not_matter(split: int | None) -> None:
    """Excel writes the string table after the sheets: the rows wait for it."""
    first, _ = read([(STRINGS, SST), (SHEET1, SHEET)])
    late, workbook = read([(SHEET1, SHEET), (STRINGS, SST)], split=split)
    assert late == first
    assert workbook.anomalies == []


def test_sheets_have_headers_of_their_own() -> None:
    out, _ = read([(SHEET1, SHEET), (SHEET2, ORDERS), (STRINGS, SST)])
    by_sheet = {(c.position.sheet, c.position.row): c for c in out}
    assert cells(by_sheet["sheet2", 2]) == [("633300498", "ordernummer")]
    assert cells(by_sheet["sheet1", 2])[1] == ("725763863", "BSN")
    # Each sheet's rows keep their order.
    assert [r for s, r in by_sheet if s == "sheet1"] == [1, 2, 3, 5]


def test_rows_without_shared_strings_do_not_wait() -> None:
    inline = (
        f"<worksheet {S}><sheetData>"
        '<row r="1"><c t="inlineStr"><is><t>bsn</t></is></c></row>'
        '<row r="2"><c><v>725763863</v></c></row></sheetData></worksheet>'
    )
    workbook = Workbook()
    reader = workbook.part(SHEET1)
    assert reader is not None
    out = reader.feed(inline.encode())
    out += reader.finish()
    assert [cells(c) for c in out] == [[("bsn", None)], [("725763863", "bsn")]]
    assert workbook.finish() == [] and workbook.anomalies == []


def test_a_first_row_of_numbers_is_no_header() -> None:
    numbers = (
        f"<worksheet {S}><sheetData>"
        '<row r="1"><c><v>725763863</v></c><c t="s"><v>0</v></c></row>'
        '<row r="2"><c><v>633300498</v></c></row></sheetData></worksheet>'
    )
    out, _ = read([(SHEET1, numbers), (STRINGS, SST)])
    assert [c.text for c in out] == ["725763863\tnaam", "633300498"]
    assert all(isinstance(c, RowChunk) and c.headers is None for c in out)


def test_too_much_waiting_reads_on_without_the_strings() -> None:
    """Past the pending cap rows go out with empty string cells, and the strings follow as
    text of their own: the joining is lost, the text is not."""
    out, workbook = read([(SHEET1, SHEET), (STRINGS, SST)], Workbook(max_pending_cells=3))
    assert [a.kind for a in workbook.anomalies] == ["text_xlsx_strings_late"]
    rows = [c for c in out if isinstance(c, RowChunk)]
    assert [c.position.row for c in rows] == [1, 2, 5]  # row 3 holds only a string
    assert "725763863" in rows[1].text and "de Vries" not in rows[1].text
    loose = [c.text for c in out if not isinstance(c, RowChunk)]
    assert loose == ["naam", "BSN", "de Vries", "Jansen", "ordernummer"]
    assert all(c.position.part == STRINGS for c in out if not isinstance(c, RowChunk))


def test_the_string_table_cap() -> None:
    out, workbook = read([(STRINGS, SST), (SHEET1, SHEET)], Workbook(max_strings=2))
    assert [a.kind for a in workbook.anomalies] == ["text_xlsx_strings_cap"]
    loose = [c.text for c in out if not isinstance(c, RowChunk)]
    assert loose == ["de Vries", "Jansen", "ordernummer"]  # out as text, not lost
    rows = [c for c in out if isinstance(c, RowChunk)]
    assert cells(rows[0])[:2] == [("naam", None), ("BSN", None)]
    assert cells(rows[1])[0] == ("", "naam")  # item 2 was not kept: the cell is empty


def test_a_workbook_without_its_string_table() -> None:
    out, workbook = read([(SHEET1, SHEET)])
    assert [a.kind for a in workbook.anomalies] == ["text_xlsx_strings_missing"]
    assert [c.position.row for c in out] == [1, 2, 5]
    assert "725763863" in out[1].text


def test_a_sheet_cut_inside_a_row() -> None:
    cut = SHEET[: SHEET.index('<row r="3">') + 40]
    out, workbook = read([(STRINGS, SST), (SHEET1, cut)], whole=False)
    assert workbook.anomalies == []
    assert [c.position.row for c in out] == [1, 2, 3]
    assert cells(out[2]) == [("Jansen", "naam")]


def test_random_splits_give_the_same_rows() -> None:
    rng = random.Random(13)
    parts = [(SHEET1, SHEET), (STRINGS, SST), (SHEET2, ORDERS)]
    whole, _ = read(parts)
    for _ in range(20):
        got, _ = read(parts, split=rng.randrange(1, 90))
        assert got == whole


def test_other_parts_are_not_read() -> None:
    workbook = Workbook()
    for name in ("xl/workbook.xml", "xl/styles.xml", "xl/worksheets/_rels/sheet1.xml.rels",
                 "xl/worksheets/sheetX.xml", "docProps/app.xml"):  # fmt: skip
        assert workbook.part(name) is None
    assert workbook.part("/XL/Worksheets/Sheet12.xml") is not None
