"""sensor/classify/edm.py: normalisers, loading a CSV export, the index file, matching."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.classify import edm
from sensor.classify.edm import (
    MAX_PENDING,
    EdmBuilder,
    EdmError,
    EdmIndex,
    EdmWindow,
    field_kind,
    load_csv,
    normalise_bsn,
    normalise_date,
    normalise_generic,
    normalise_name,
    normalise_postcode,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
FIELDS = ["geboortedatum", "postcode", "achternaam"]
SURNAMES = ["Jansen", "Bakker", "Visser", "Meijer", "Mulder", "Dekker", "Brouwer"]
LETTERS = "ABCEGHJKLMNPRTVWXZ"
Record = tuple[str, str, str, str]  # bsn, geboortedatum (ISO), postcode "1234 AB", achternaam


def fake_bsn(rng: random.Random) -> str:
    while True:
        digits = str(rng.randrange(10_000_000, 100_000_000))
        check = sum((9 - i) * int(d) for i, d in enumerate(digits)) % 11
        if check < 10:
            return digits + str(check)


def fake_records(count: int, seed: int = 13) -> list[Record]:
    """Distinct BSNs, postcodes and surnames (the surname carries a unique suffix, so that a
    scan of the index for it cannot hit by chance)."""
    rng = random.Random(seed)
    bsns: set[str] = set()
    postcodes: set[str] = set()
    records: list[Record] = []
    # Fixed variants the tests look up by name.
    fixed = [
        ("1985-03-01", "2511 CV", "de Vries"),
        ("1972-12-31", "1012 AB", "Müller-Lüdenscheidt"),
        ("2001-07-04", "9999 ZZ", "van 't Hof"),
    ]
    while len(records) < count:
        number = fake_bsn(rng)
        if number in bsns:
            continue
        if fixed:
            date, postcode, name = fixed.pop(0)
        else:
            date = (
                f"{rng.randrange(1935, 2006)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
            )
            postcode = f"{rng.randrange(1000, 9999)} {rng.choice(LETTERS)}{rng.choice(LETTERS)}"
            suffix = "".join(rng.choice("qxzjkw") for _ in range(5))
            name = f"{rng.choice(SURNAMES)}{suffix}"
        if postcode in postcodes:
            continue
        bsns.add(number)
        postcodes.add(postcode)
        records.append((number, date, postcode, name))
    return records


def dutch_date(iso: str) -> str:
    year, month, day = iso.split("-")
    return f"{day}-{month}-{year}"


def write_csv(
    path: Path, records: list[Record], delimiter: str = ";", bom: bool = True, quote: bool = False
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        quoting=csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL,
        lineterminator="\r\n",
    )
    writer.writerow(["BSN", "Geboortedatum", "Postcode", "Achternaam", "Uitslag"])
    for i, (number, date, postcode, name) in enumerate(records):
        # dates in both formats, as exports mix them
        writer.writerow([number, date if i % 2 else dutch_date(date), postcode, name, "PAP1"])
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return fake_records(1000)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, records: list[Record]) -> Path:
    directory = tmp_path_factory.mktemp("edm")
    source = directory / "patients.csv"
    write_csv(source, records)
    index = directory / "edm.idx"
    stats = load_csv(source, index, KEY, "bsn", FIELDS)
    assert (stats.rows, stats.records, stats.invalid_primary, stats.merged) == (1000, 1000, 0, 0)
    assert stats.pairs == 3000
    return index


@pytest.fixture
def index(built: Path) -> Any:
    with EdmIndex.open(built, KEY) as opened:
        yield opened


# --- normalisers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123456782", "123456782"),
        ("123.456.782", "123456782"),
        ("123 456 782", "123456782"),
        ("1234-56-782", "123456782"),
        (" 123456782 ", "123456782"),
        ("12345672", "012345672"),  # legacy eight digits, zero-padded, then the elfproef
        ("123456781", None),  # elfproef fails
        ("000000000", None),
        ("1234567890", None),
        ("12345678X", None),
        ("", None),
        ("١٢٣٤٥٦٧٨٢", None),  # Arabic-Indic digits are no BSN
    ],
)
def test_normalise_bsn(value: str, expected: str | None) -> None:
    assert normalise_bsn(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "1985-03-01",
        "1985-3-1",
        "1985/03/01",
        "1985-03-01T00:00:00",
        "1985-03-01 00:00:00",
        "01-03-1985",
        "1-3-1985",
        "01/03/1985",
        "01.03.1985",
        "19850301",
        "01031985",
        "1 maart 1985",
        "01-mrt-1985",
        "1 March 1985",
        " 1 mrt. 1985 ",
    ],
)
def test_normalise_date_formats(value: str) -> None:
    assert normalise_date(value) == "1985-03-01"


@pytest.mark.parametrize(
    "value", ["1985-02-30", "31-04-1985", "1985", "03/01/85", "1 foo 1985", "0001-01-01", ""]
)
def test_normalise_date_rejects(value: str) -> None:
    assert normalise_date(value) is None


def test_other_normalisers() -> None:
    assert normalise_postcode("2511 CV") == normalise_postcode("2511cv") == "2511CV"
    assert normalise_postcode(" 2511-cv ") == normalise_postcode("NL-2511 CV") == "2511CV"
    assert normalise_postcode("   ") is None
    variants = ["de Vries", "De  Vries", "DE VRIES", "de-Vriës", "  de vries."]
    assert {normalise_name(v) for v in variants} == {"devries"}
    assert normalise_name("Müller-Lüdenscheidt") == "mullerludenscheidt"
    assert normalise_name("van 't Hof") == normalise_name("Van 'T Hof") == "vanthof"
    assert normalise_name(" - ") is None
    assert normalise_generic("  Huisarts  Van Dam ") == "huisarts van dam"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("bsn", "bsn"),
        ("BSN-nummer", "bsn"),
        ("burgerservicenummer", "bsn"),
        ("geboortedatum", "date"),
        ("DOB", "date"),
        ("postcode", "postcode"),
        ("achternaam", "name"),
        ("voorletters", "name"),
        ("geboorteplaats", "name"),
        ("huisarts", "generic"),
    ],
)
def test_field_kind(name: str, kind: str) -> None:
    assert field_kind(name) == kind


# --- the index -----------------------------------------------------------------------------


def test_exact_match_of_every_record(index: EdmIndex, records: list[Record]) -> None:
    assert index.records == 1000
    assert index.primary_field == "bsn"
    assert index.fields == tuple(FIELDS)
    seen = set()
    for number, date, postcode, name in records:
        record = index.primary(number)
        assert record is not None
        seen.add(record)
        assert index.corroborates(record, "geboortedatum", date)
        assert index.corroborates(record, "postcode", postcode)
        assert index.corroborates(record, "achternaam", name)
    assert seen == set(range(1000))


def test_other_records_fields_do_not_corroborate(index: EdmIndex, records: list[Record]) -> None:
    first, second = records[10], records[11]
    record = index.primary(first[0])
    assert record is not None
    assert not index.corroborates(record, "postcode", second[2])
    assert not index.corroborates(record, "achternaam", second[3])
    assert not index.corroborates(record, "onbekend", first[2])  # no such field
    assert not index.corroborates(record, "postcode", "")
    assert not index.corroborates(-1, "postcode", first[2])
    assert not index.corroborates(10**6, "postcode", first[2])
    rng = random.Random(99)
    known = {r[0] for r in records}
    strangers = [b for b in (fake_bsn(rng) for _ in range(2000)) if b not in known]
    assert all(index.primary(b) is None for b in strangers)
    assert index.primary("123456781") is None  # not even a BSN


def test_normalisation_variants_corroborate(index: EdmIndex, records: list[Record]) -> None:
    number = records[0][0]
    record = index.primary(f"{number[:3]}.{number[3:6]}.{number[6:]}")
    assert record is not None and record == index.primary(number)
    for value in ["1985-03-01", "01-03-1985", "1 maart 1985", "19850301"]:
        assert index.corroborates(record, "geboortedatum", value), value
    for value in ["2511 CV", "2511cv", "2511 cv"]:
        assert index.corroborates(record, "postcode", value), value
    for value in ["de Vries", "De  Vries", "DE VRIES"]:
        assert index.corroborates(record, "achternaam", value), value
    other = index.primary(records[1][0])
    assert other is not None
    assert index.corroborates(other, "achternaam", "MULLER LUDENSCHEIDT")
    assert index.normalise("postcode", "2511 cv") == "2511CV"
    assert index.normalise("nope", "x") is None


def _digests(index: EdmIndex) -> set[bytes]:
    """Every 16-byte hash in an index's two sorted arrays."""
    view = index._view
    found = set()
    for table in (index._primaries, index._pair_table):
        for i in range(table.count):
            start = table.start + i * 16
            found.add(view[start : start + 16])
    return found


def test_wrong_key_is_an_error_and_finds_nothing(
    built: Path, tmp_path: Path, records: list[Record]
) -> None:
    with pytest.raises(EdmError, match="another secret key"):
        EdmIndex.open(built, OTHER_KEY)
    # The same export under another key shares no hash with the first index, so no lookup
    # made with one key can ever hit a table made with the other.
    source = tmp_path / "patients.csv"
    write_csv(source, records)
    load_csv(source, tmp_path / "other.idx", OTHER_KEY, "bsn", FIELDS)
    with EdmIndex.open(built, KEY) as mine, EdmIndex.open(tmp_path / "other.idx", OTHER_KEY) as o:
        assert mine.records == o.records == 1000
        ours, theirs = _digests(mine), _digests(o)
        assert len(ours) == len(theirs) == 4000
        assert not ours & theirs
        number = records[0][0]
        record = o.primary(number)
        assert record is not None and mine.primary(number) is not None
        # the other key's pair hash for a true field is not in this index's table
        digest = o._pair_hash["postcode"](
            o._view[o._primaries.start + record * 16 : o._primaries.start + record * 16 + 16].hex()
            + "\x1f"
            + "2511CV"
        )
        assert digest in theirs and digest not in ours


def test_index_holds_no_clear_value(built: Path, records: list[Record]) -> None:
    data = built.read_bytes()
    for number, date, postcode, name in records:
        for value in {
            number,
            date,
            dutch_date(date),
            postcode,
            postcode.replace(" ", ""),
            name,
            normalise_name(name) or "",
        }:
            for encoding in ("utf-8", "utf-16-le"):
                assert value.encode(encoding) not in data, value
    assert b"PAP1" not in data  # the unindexed column is not there either


def test_index_is_private(built: Path) -> None:
    assert stat.S_IMODE(built.stat().st_mode) == 0o600


def test_index_mode_ignores_a_lax_umask(tmp_path: Path, records: list[Record]) -> None:
    source = tmp_path / "p.csv"
    write_csv(source, records[:20])
    old = os.umask(0)
    try:
        load_csv(source, tmp_path / "edm.idx", KEY, "bsn", FIELDS)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "edm.idx").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: b"",
        lambda d: d[:10],
        lambda d: d[:40],
        lambda d: d[:-1],
        lambda d: d[: len(d) // 2],
        lambda d: d + b"\0",
        lambda d: b"NOTANIDX" + d[8:],
        lambda d: d[:8] + b"\x09\x00" + d[10:],  # format version 9
        lambda d: d[:12] + b"\xff\xff\xff\x7f" + d[16:],  # header length beyond the file
        lambda d: d[:16] + b"[" + d[17:],  # broken JSON
        lambda d: d[:-100] + bytes([d[-100] ^ 1]) + d[-99:],  # one bit of the body
        lambda d: d.replace(b'"records": 1000', b'"records": 1001'),
        lambda d: d.replace(b'"pairs": 3000', b'"pairs": -300'),
    ],
)
def test_damaged_index_is_a_clear_error(
    built: Path, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    broken = tmp_path / "edm.idx"
    broken.write_bytes(damage(built.read_bytes()))
    with pytest.raises(EdmError, match=r"edm\.idx: (not an EDM index|the EDM index is|EDM index )"):
        EdmIndex.open(broken, KEY)


def test_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EdmError, match="cannot open the EDM index"):
        EdmIndex.open(tmp_path / "absent.idx", KEY)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), keep=st.integers(0, 700))
def test_arbitrary_files_never_raise_anything_else(
    built: Path, tmp_path: Path, data: bytes, keep: int
) -> None:
    path = tmp_path / "fuzz.idx"
    path.write_bytes(built.read_bytes()[:keep] + data)
    with contextlib.suppress(EdmError):
        EdmIndex.open(path, KEY).close()


def test_atomic_rewrite(tmp_path: Path, records: list[Record]) -> None:
    source = tmp_path / "p.csv"
    target = tmp_path / "edm.idx"
    write_csv(source, records[:100])
    load_csv(source, target, KEY, "bsn", FIELDS)
    before = target.stat().st_ino
    old = EdmIndex.open(target, KEY)
    write_csv(source, records[100:250])
    load_csv(source, target, KEY, "bsn", FIELDS)
    # A reader of the old file keeps a whole old index; a new reader gets the whole new one.
    assert old.records == 100 and old.primary(records[0][0]) is not None
    old.close()
    assert target.stat().st_ino != before
    with EdmIndex.open(target, KEY) as new:
        assert new.records == 150
        assert new.primary(records[0][0]) is None
        assert new.primary(records[200][0]) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edm.idx", "p.csv"]


def test_failed_write_keeps_the_old_index(
    tmp_path: Path, records: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "p.csv"
    target = tmp_path / "edm.idx"
    write_csv(source, records[:50])
    load_csv(source, target, KEY, "bsn", FIELDS)
    original = target.read_bytes()
    write_csv(source, records[50:80])

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(edm.os, "fsync", full)
    with pytest.raises(OSError):
        load_csv(source, target, KEY, "bsn", FIELDS)
    monkeypatch.undo()
    assert target.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edm.idx", "p.csv"]


# --- the CSV export ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "bom", "quote"), [(";", True, False), (",", True, True), (",", False, False)]
)
def test_csv_dialects(
    tmp_path: Path, records: list[Record], delimiter: str, bom: bool, quote: bool
) -> None:
    rows = [*records[:30], ("123456781", "1980-01-01", "1000 AA", "Fout")]  # invalid BSN
    rows.append((records[0][0], "1990-06-06", "3000 BB", "Tweede Rij"))  # same BSN again
    source = tmp_path / "p.csv"
    write_csv(source, rows, delimiter, bom, quote)
    stats = load_csv(source, tmp_path / "edm.idx", KEY, "bsn", FIELDS)
    assert (stats.rows, stats.records, stats.invalid_primary, stats.merged) == (32, 30, 1, 1)
    with EdmIndex.open(tmp_path / "edm.idx", KEY) as index:
        record = index.primary(records[0][0])
        assert record is not None
        # both rows of the merged record corroborate it
        assert index.corroborates(record, "postcode", records[0][2])
        assert index.corroborates(record, "postcode", "3000bb")
        assert index.primary("123456781") is None


def test_csv_quoted_fields_and_short_rows(tmp_path: Path, records: list[Record]) -> None:
    number = records[5][0]
    source = tmp_path / "p.csv"
    source.write_text(
        "bsn,achternaam,postcode,geboortedatum\n"
        f'"{number}","Vries, de","2511 CV"\n'  # no date column on this row
        "\n",
        encoding="utf-8",
    )
    stats = load_csv(source, tmp_path / "edm.idx", KEY, "bsn", FIELDS)
    assert (stats.records, stats.missing["geboortedatum"]) == (1, 1)
    with EdmIndex.open(tmp_path / "edm.idx", KEY) as index:
        record = index.primary(number)
        assert record is not None
        assert index.corroborates(record, "achternaam", "vries de")


def test_windows_1252_export(tmp_path: Path, records: list[Record]) -> None:
    number = records[7][0]
    source = tmp_path / "p.csv"
    source.write_bytes(
        f"bsn;geboortedatum;postcode;achternaam\n{number};1-3-1985;2511CV;Müller\n".encode("cp1252")
    )
    load_csv(source, tmp_path / "edm.idx", KEY, "bsn", FIELDS)
    with EdmIndex.open(tmp_path / "edm.idx", KEY) as index:
        record = index.primary(number)
        assert record is not None and index.corroborates(record, "achternaam", "MÜLLER")


def test_csv_errors_never_show_a_value(tmp_path: Path, records: list[Record]) -> None:
    number = records[0][0]
    source = tmp_path / "p.csv"
    source.write_text(f"{number};1985-03-01;2511 CV;de Vries\n", encoding="utf-8")  # no header
    with pytest.raises(EdmError) as caught:
        load_csv(source, tmp_path / "edm.idx", KEY, "bsn", FIELDS)
    message = str(caught.value)
    assert "no column named 'bsn'" in message
    assert number not in message and "Vries" not in message
    source.write_text("bsn;geboortedatum;postcode;achternaam\n123456781;x;y;z\n")
    with pytest.raises(EdmError, match="no row has a valid bsn"):
        load_csv(source, tmp_path / "edm.idx", KEY, "bsn", FIELDS)
    assert not (tmp_path / "edm.idx").exists()
    with pytest.raises(EdmError, match="cannot read"):
        load_csv(tmp_path / "absent.csv", tmp_path / "edm.idx", KEY, "bsn", FIELDS)


def test_builder_argument_errors() -> None:
    with pytest.raises(EdmError, match="at least one"):
        EdmBuilder(KEY, "bsn", [])
    with pytest.raises(EdmError, match="distinct"):
        EdmBuilder(KEY, "bsn", ["bsn", "postcode"])
    with pytest.raises(EdmError, match="unknown field kind"):
        EdmBuilder(KEY, "bsn", ["postcode"], {"postcode": "zipcode"})


def test_kind_override(tmp_path: Path, records: list[Record]) -> None:
    number = records[3][0]
    source = tmp_path / "p.csv"
    source.write_text(f"id;huisarts\n{number};Dr. Van Dam\n", encoding="utf-8")
    load_csv(
        source, tmp_path / "edm.idx", KEY, "id", ["huisarts"], {"id": "bsn", "huisarts": "name"}
    )
    with EdmIndex.open(tmp_path / "edm.idx", KEY) as index:
        record = index.primary(number)
        assert record is not None
        assert index.corroborates(record, "huisarts", "dr van dam")
        assert index.kinds == {"id": "bsn", "huisarts": "name"}


# --- matching one object -------------------------------------------------------------------


def test_window_primary_plus_field_is_a_match(index: EdmIndex, records: list[Record]) -> None:
    number = records[0][0]
    window = EdmWindow(index)
    window.feed("bsn", number, 0)
    assert (window.matched, window.primaries_seen, window.primary_only) == (0, 1, 1)
    window.feed("date", "01-03-1985", 12)
    assert (window.matched, window.primary_only) == (1, 0)
    window.feed("postcode", "2511cv", 30)  # a second field of a matched record: still one
    window.feed("bsn", number, 50)
    assert window.matched == 1
    assert window.matched_records() == [index.primary(number)]


def test_window_primary_alone_is_no_match(index: EdmIndex, records: list[Record]) -> None:
    window = EdmWindow(index)
    for position, record in enumerate(records[:50]):
        window.feed("bsn", record[0], position * 400)  # each out of reach of the others
    window.feed("postcode", "0000 XX", 20_000)
    window.feed("name", records[60][3], 20_005)  # another record's name
    assert (window.matched, window.primaries_seen, window.primary_only) == (0, 50, 50)
    assert window.matched_records() == []


def test_window_field_first_then_primary(index: EdmIndex, records: list[Record]) -> None:
    window = EdmWindow(index)
    window.feed("name", "DE VRIES", 0)
    window.feed("bsn", records[0][0], 200)
    assert window.matched == 1


def test_window_distance_and_rows(index: EdmIndex, records: list[Record]) -> None:
    number, _, postcode, _ = records[20]
    far = EdmWindow(index, window=300)
    far.feed("bsn", number, 0)
    far.feed("postcode", postcode, 301)
    assert far.matched == 0
    near = EdmWindow(index, window=300)
    near.feed("bsn", number, 0)
    near.feed("postcode", postcode, 300)
    assert near.matched == 1
    row = EdmWindow(index, window=10)  # a long row: the same row counts, however far
    row.feed("bsn", number, 0, row=("members/a.csv", None, 7))
    row.feed("postcode", postcode, 5000, row=("members/a.csv", None, 7))
    assert row.matched == 1
    other_row = EdmWindow(index, window=10)
    other_row.feed("bsn", number, 0, row=7)
    other_row.feed("postcode", postcode, 5000, row=8)
    assert other_row.matched == 0


def test_window_column_names_as_kinds(index: EdmIndex, records: list[Record]) -> None:
    number, date, postcode, name = records[30]
    window = EdmWindow(index)
    window.feed("bsn", number, 0, row=1)
    window.feed("achternaam", postcode, 10, row=1)  # a postcode is no surname
    assert window.matched == 0
    window.feed("geboortedatum", date, 20, row=1)
    assert window.matched == 1
    window.feed("unknown-kind", name, 30, row=1)  # ignored
    assert window.matched == 1


def test_window_counts_a_whole_table(index: EdmIndex, records: list[Record]) -> None:
    window = EdmWindow(index)
    position = 0
    for row, (number, date, postcode, name) in enumerate(records):
        for kind, value in (("bsn", number), ("date", date), ("postcode", postcode)):
            window.feed(kind, value, position, row)
            position += len(value) + 1
        del name
    assert (window.matched, window.primary_only) == (1000, 0)
    assert window.matched_records() == list(range(1000))
    assert len(window._primaries) <= MAX_PENDING
    assert len(window._corroborators) <= MAX_PENDING


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["bsn", "date", "postcode", "name", "generic", "achternaam", "x"]),
            st.text(max_size=40),
            st.integers(0, 10**6),
            st.one_of(st.none(), st.integers(0, 5)),
        ),
        max_size=60,
    )
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_window_never_raises(
    index: EdmIndex, feeds: list[tuple[str, str, int, int | None]]
) -> None:
    window = EdmWindow(index)
    for kind, value, position, row in feeds:
        window.feed(kind, value, position, row)
    assert 0 <= window.matched <= window.primaries_seen
