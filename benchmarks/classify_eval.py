#!/usr/bin/env python3
"""Accuracy and cost of the classification stage on its evaluation corpus (issue 13, item 8).

Usage: classify_eval.py [--scale small|full] [--seed S] [--out DIR] [--repeat N]
                        [--engine auto|hyperscan|re]

1. Generates the corpus with tests/data/classify/make_eval.py into a temporary directory (or
   `--out`, which is kept) and reads labels.json.
2. Classifies every file the way the sensor will: a `FileObject` fed in 64 KiB chunks whose
   `ContentCaps.text_consumer` starts one `ObjectScorer` per object, members of containers
   (ZIP, OOXML parts) included. A file's severity is the highest over the file and all its
   members, since the sensor raises a finding for each of them.
3. Prints Markdown: the confusion table (label bounds x predicted severity), the same per
   variant, precision and recall at severity >= high (the issue's target: both >= 0.99) and
   at >= medium, every file whose severity lies outside its label's bounds with what each of
   its objects scored, the distinct values found per identifier type against the labels, and
   the throughput of the pass (MB = 10^6 object bytes, best of `--repeat`) beside the same
   FileObject pass without a text consumer (the difference is the cost of classification),
   with a consumer that only counts the text (the cost of extraction), and the scanner alone
   on the extracted text (one call per chunk, and 64 KiB calls).

Definitions. Must alert: `expected_severity_min` is high or critical (the patient exports).
At >= high a file that is not "must alert" (a negative, a referral letter) scored high or
above is a false positive. At >= medium the positives are all `kind: positive` files (the
referral letters' one identified patient with health data is the table's `medium`) and any
negative at medium or above counts as a false positive, even where its label allows medium:
that number is informative, not a target. Exit status 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sensor.classify.detectors import load_detectors  # noqa: E402
from sensor.classify.score import Classification, Classifier, ObjectScorer  # noqa: E402
from sensor.content.fingerprint.base import TextChunk  # noqa: E402
from sensor.content.objects import (  # noqa: E402
    DEFAULT_CAPS,
    ContentCaps,
    FileInfo,
    FileObject,
    ObjectMeta,
)
from tests.data.classify.make_eval import generate  # noqa: E402

CHUNK = 64 * 1024  # what a reassembled TCP stream hands the content stage at a time
SEVERITIES = ("none", "low", "medium", "high", "critical")
RANK = {name: i for i, name in enumerate(SEVERITIES)}
MUST_ALERT = ("high", "critical")
# The keyed hash only decides which values are the same; a fixed key keeps runs comparable.
KEY = hashlib.sha256(b"sluice classify_eval").digest()


@dataclass(slots=True)
class Scored:
    """One object of a file (the file itself or a member) and what its scorer concluded."""

    path: str
    size: int
    result: Classification


@dataclass(slots=True)
class Outcome:
    label: dict[str, Any]
    size: int
    objects: list[Scored] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return max(
            (o.result.severity or "none" for o in self.objects),
            key=RANK.__getitem__,
            default="none",
        )

    def distinct(self, detector: str) -> int:
        """Distinct values summed over the objects (members hold distinct patients here)."""
        return sum(
            o.result.identifiers[detector].distinct
            for o in self.objects
            if detector in o.result.identifiers
        )

    def records(self) -> int:
        return sum(o.result.records for o in self.objects)


def walk(info: FileInfo, path: str) -> Iterator[Scored]:
    if isinstance(info.classification, Classification):
        yield Scored(path, info.size, info.classification)
    for member in info.members:
        yield from walk(member, f"{path} > {member.filename or '?'}")


def run_object(data: bytes, name: str, caps: ContentCaps) -> FileInfo:
    obj = FileObject(filename=name, caps=caps)
    for i in range(0, len(data), CHUNK):
        obj.update(data[i : i + CHUNK])
    return obj.finish(True)


def consumer_caps(classifier: Classifier) -> ContentCaps:
    def factory(meta: ObjectMeta) -> ObjectScorer:
        return classifier.scorer()

    return replace(DEFAULT_CAPS, text_consumer=factory)


@dataclass(slots=True)
class TextCounter:
    """A text consumer that only counts characters: text extraction without any scoring
    (`keep`: and keeps the chunks' text, for timing the scanner alone on it)."""

    chars: int = 0
    keep: bool = False
    texts: list[str] = field(default_factory=list)

    def text(self, chunks: list[TextChunk]) -> None:
        self.chars += sum(len(chunk.text) for chunk in chunks)
        if self.keep:
            self.texts += (chunk.text for chunk in chunks)

    def finish(self, complete: bool) -> None:
        return None


def counting_caps(counters: list[TextCounter], keep: bool = False) -> ContentCaps:
    def factory(meta: ObjectMeta) -> TextCounter:
        counters.append(TextCounter(keep=keep))
        return counters[-1]

    return replace(DEFAULT_CAPS, text_consumer=factory)


@dataclass(slots=True)
class Pass:
    """One timed pass over every file."""

    seconds: float
    per_format: dict[str, float]
    infos: list[FileInfo]


def timed_pass(files: list[tuple[dict[str, Any], bytes]], caps: ContentCaps) -> Pass:
    per_format: dict[str, float] = defaultdict(float)
    infos = []
    total = 0.0
    for label, data in files:
        start = time.perf_counter()
        info = run_object(data, Path(label["file"]).name, caps)
        spent = time.perf_counter() - start
        total += spent
        per_format[label["format"]] += spent
        infos.append(info)
    return Pass(total, dict(per_format), infos)


def expected_range(label: dict[str, Any]) -> str:
    low, high = label["expected_severity_min"], label["expected_severity_max"]
    return f"{low or 'none'}..{high or 'critical'}"


def within(label: dict[str, Any], severity: str) -> bool:
    low, high = label["expected_severity_min"], label["expected_severity_max"]
    return RANK[severity] >= RANK[low or "none"] and RANK[severity] <= RANK[high or "critical"]


def variant(label: dict[str, Any]) -> str:
    """`positive/export-comma-large-03.csv` -> `positive/export-comma-large.csv`."""
    path = Path(label["file"])
    stem = path.stem.rsplit("-", 1)[0]
    return f"{path.parent.name}/{stem}{path.suffix}"


def ratio(num: int, den: int) -> str:
    return f"{num / den:.4f}" if den else "n/a"


def print_confusion(outcomes: list[Outcome]) -> None:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for o in outcomes:
        kind = o.label["kind"]
        rows[f"{kind} [{expected_range(o.label)}]"][o.severity] += 1
        rows[f"**{kind} (all)**"][o.severity] += 1
    print("| files (kind [expected]) | " + " | ".join(SEVERITIES) + " | total |")
    print("|---|" + "---:|" * (len(SEVERITIES) + 1))
    for name in sorted(rows, key=lambda n: (n.startswith("**"), n)):
        counts = rows[name]
        cells = [str(counts[s]) for s in SEVERITIES] + [str(sum(counts.values()))]
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_variants(outcomes: list[Outcome]) -> None:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    expected: dict[str, str] = {}
    for o in outcomes:
        rows[variant(o.label)][o.severity] += 1
        expected[variant(o.label)] = expected_range(o.label)
    print("| variant | expected | " + " | ".join(SEVERITIES) + " | outside |")
    print("|---|---|" + "---:|" * (len(SEVERITIES) + 1))
    for name in sorted(rows):
        counts = rows[name]
        bad = sum(not within(o.label, o.severity) for o in outcomes if variant(o.label) == name)
        cells = [str(counts[s] or "") for s in SEVERITIES] + [str(bad or "")]
        print(f"| {name} | {expected[name]} | " + " | ".join(cells) + " |")


def print_metrics(outcomes: list[Outcome]) -> None:
    print("| threshold | positives | TP | FN | FP | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for threshold, is_positive in (
        ("high", lambda lb: lb["expected_severity_min"] in MUST_ALERT),
        ("medium", lambda lb: lb["kind"] == "positive"),
    ):
        tp = fn = fp = 0
        for o in outcomes:
            alerted = RANK[o.severity] >= RANK[threshold]
            if is_positive(o.label):
                tp += alerted
                fn += not alerted
            else:
                fp += alerted
        name = (
            ">= high (must alert: min high)"
            if threshold == "high"
            else (">= medium (all kind=positive)")
        )
        print(
            f"| {name} | {tp + fn} | {tp} | {fn} | {fp} | {ratio(tp, tp + fp)} | "
            f"{ratio(tp, tp + fn)} |"
        )
    over_low = sum(
        1
        for o in outcomes
        if o.label["kind"] == "negative"
        and o.label["expected_severity_max"] == "low"
        and RANK[o.severity] >= RANK["medium"]
    )
    print(f"\nNegatives labelled max `low` scored medium or above: {over_low}.")


def describe(result: Classification) -> str:
    counts = ", ".join(
        f"{name}={c.distinct}" + (f" (ctx {c.with_context})" if c.with_context else "")
        for name, c in sorted(result.identifiers.items())
    )
    return (
        f"severity {result.severity or 'none'}; categories [{', '.join(result.categories)}]; "
        f"distinct {{{counts}}}; records {result.records}; strong terms "
        f"{result.strong_terms}; rule: {result.rule or '-'}" + ("; CAPPED" if result.capped else "")
    )


def print_misclassified(outcomes: list[Outcome]) -> None:
    wrong = [o for o in outcomes if not within(o.label, o.severity)]
    if not wrong:
        print("None: every file scored within its label's bounds.")
        return
    for o in wrong:
        lb = o.label
        side = (
            "below min"
            if RANK[o.severity] < RANK[lb["expected_severity_min"] or "none"]
            else ("above max")
        )
        print(
            f"- `{lb['file']}` ({lb['format']}, {o.size:,} B): expected "
            f"{expected_range(lb)}, got **{o.severity}** ({side}). Label: identifiers "
            f"{lb['identifiers']}, records {lb['records']}, categories {lb['categories']}. "
            f"{lb['note']}"
        )
        shown = [s for s in o.objects if s.result.severity is not None] or o.objects
        for s in shown:
            print(f"  - `{s.path}` ({s.size:,} B): {describe(s.result)}")
        if not o.objects:
            print("  - no object of this file had a text extractor (nothing was scored)")


# labels.json identifier types -> the detectors that find them
LABEL_DETECTORS = {
    "bsn": ("bsn", "bsn_legacy"),
    "dob": ("date_of_birth", "date_of_birth_compact"),
    "postcode": ("postcode_nl",),
    "agb": ("agb",),
    "email": ("email_address",),
    "phone": ("phone_nl",),
    "iban": ("iban",),
    "pan": ("payment_card",),
}


def print_counts(outcomes: list[Outcome]) -> None:
    """Distinct values found (summed over a file's objects) against the labels, per variant:
    `found/labelled`, and how many files had exactly the labelled BSNs and records."""
    types = list(LABEL_DETECTORS)
    rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    exact: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for o in outcomes:
        lb, name = o.label, variant(o.label)
        for kind in types:
            if kind in lb["identifiers"]:
                found = sum(o.distinct(d) for d in LABEL_DETECTORS[kind])
                rows[name][kind][0] += found
                rows[name][kind][1] += lb["identifiers"][kind]
        exact[name][0] += 1
        exact[name][1] += o.distinct("bsn") + o.distinct("bsn_legacy") == lb["identifiers"]["bsn"]
        exact[name][2] += lb["kind"] == "positive" and o.records() == lb["records"]
    print("| variant | files | bsn exact | records exact | " + " | ".join(types) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(types))
    for name in sorted(rows):
        files, bsn_ok, rec_ok = exact[name]
        records = str(rec_ok) if name.startswith("positive/") else "-"
        cells = [f"{rows[name][k][0]}/{rows[name][k][1]}" if k in rows[name] else "" for k in types]
        print(f"| {name} | {files} | {bsn_ok} | {records} | " + " | ".join(cells) + " |")


def print_throughput(
    files: list[tuple[dict[str, Any], bytes]],
    chars: list[int],
    best: dict[str, Pass],
    scans: list[tuple[float, int]],
) -> None:
    size: dict[str, int] = defaultdict(int)
    text: dict[str, int] = defaultdict(int)
    for (lb, data), n in zip(files, chars, strict=True):
        size[lb["format"]] += len(data)
        text[lb["format"]] += n
    total_bytes, total_chars = sum(size.values()), sum(text.values())
    plain, extract, classify = best["plain"], best["extract"], best["classify"]

    def rate(amount: int, seconds: float) -> str:
        return f"{amount / seconds / 1e6:.1f}" if seconds > 0 else "n/a"

    print(
        f"{total_bytes / 1e6:.2f} MB of objects, {total_chars / 1e6:.2f} million characters "
        "of extracted text.\n"
    )
    print("| pass | seconds | object MB/s | text Mchar/s |")
    print("|---|---:|---:|---:|")
    for name, seconds in (
        ("FileObject, no text consumer", plain.seconds),
        ("FileObject + text extraction only (a counting consumer)", extract.seconds),
        ("FileObject + classification (the sensor's pass)", classify.seconds),
        ("classification minus no consumer (its whole cost)", classify.seconds - plain.seconds),
        (
            "classification minus extraction (scan, validate, score)",
            classify.seconds - extract.seconds,
        ),
        (f"the scanner alone, one call per text chunk ({scans[0][1]:,} candidates)", scans[0][0]),
        (f"the scanner alone, {CHUNK // 1024} KiB calls ({scans[1][1]:,} candidates)", scans[1][0]),
    ):
        print(
            f"| {name} | {seconds:.2f} | {rate(total_bytes, seconds)} | "
            f"{rate(total_chars, seconds)} |"
        )
    print(
        "\n| format | object MB | text Mchar | MB/s no consumer | MB/s extraction only | "
        "MB/s classification | scoring Mchar/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for fmt in sorted(size):
        a, b, c = (p.per_format.get(fmt, 0.0) for p in (plain, extract, classify))
        print(
            f"| {fmt} | {size[fmt] / 1e6:.2f} | {text[fmt] / 1e6:.2f} | {rate(size[fmt], a)} | "
            f"{rate(size[fmt], b)} | {rate(size[fmt], c)} | {rate(text[fmt], c - b)} |"
        )


def evaluate(corpus: Path, repeat: int, engine: str) -> None:
    doc = json.loads((corpus / "labels.json").read_text())
    labels: list[dict[str, Any]] = doc["files"]
    files = [(lb, (corpus / lb["file"]).read_bytes()) for lb in labels]
    total_bytes = sum(len(data) for _, data in files)

    classifier = Classifier(load_detectors(), KEY, engine=engine)
    counters: list[TextCounter] = []
    passes = {
        "plain": DEFAULT_CAPS,
        "extract": counting_caps(counters),
        "classify": consumer_caps(classifier),
    }
    best: dict[str, Pass] = {}
    first: list[list[Classification]] | None = None
    unstable = 0  # files whose classification differed between passes (there should be none)
    for _ in range(max(1, repeat)):
        for name, caps in passes.items():
            counters.clear()
            result = timed_pass(files, caps)
            if name == "classify":
                got = [[s.result for s in walk(info, "")] for info in result.infos]
                if first is None:
                    first = got
                unstable += sum(a != b for a, b in zip(first, got, strict=True))
            if name not in best or result.seconds < best[name].seconds:
                best[name] = result
    chars, texts = extracted_text(files)
    scans = [
        min(
            (scan_only(classifier, texts, batch) for _ in range(max(1, repeat))), key=lambda r: r[0]
        )
        for batch in (0, CHUNK)
    ]
    del texts
    outcomes = [
        Outcome(lb, len(data), list(walk(info, Path(lb["file"]).name)))
        for (lb, data), info in zip(files, best["classify"].infos, strict=True)
    ]

    kinds = Counter(lb["kind"] for lb in labels)
    print(
        f"## Classification on the evaluation corpus: scale {doc['scale']}, seed {doc['seed']}\n\n"
        f"{len(labels)} files ({kinds['positive']} positive, {kinds['negative']} negative), "
        f"{total_bytes / 1e6:.1f} MB of objects (labels.json aside); scanner engine "
        f"`{classifier.scanner.engine}`; {CHUNK // 1024} KiB chunks; a file's severity is the "
        "highest of it and its members."
    )
    if unstable:
        print(f"\n**Warning**: {unstable} file classifications differed between passes.")
    print()
    print("### Confusion table (files per predicted severity)\n")
    print_confusion(outcomes)
    print("\n### Per variant\n")
    print_variants(outcomes)
    print("\n### Precision and recall\n")
    print_metrics(outcomes)
    print("\n### Files outside their label's bounds\n")
    print_misclassified(outcomes)
    print("\n### Distinct values found / labelled (summed over each file's objects)\n")
    print_counts(outcomes)
    print(f"\n### Throughput (best of {max(1, repeat)} passes; MB = 10^6 object bytes)\n")
    print_throughput(files, chars, best, scans)


def extracted_text(
    files: list[tuple[dict[str, Any], bytes]],
) -> tuple[list[int], list[list[list[str]]]]:
    """Per file: the characters of text extracted from it and its members, and each object's
    chunk texts (an untimed pass)."""
    counters: list[TextCounter] = []
    caps = counting_caps(counters, keep=True)
    chars, texts = [], []
    for label, data in files:
        counters.clear()
        run_object(data, Path(label["file"]).name, caps)
        chars.append(sum(c.chars for c in counters))
        texts.append([c.texts for c in counters if c.texts])
    return chars, texts


def scan_only(
    classifier: Classifier, texts: list[list[list[str]]], batch: int
) -> tuple[float, int]:
    """The scanner alone (no validators, no scoring) over the same chunks, each with a line
    end as the scorer adds: fed one chunk per call (`batch` 0) or joined into calls of about
    `batch` characters. Seconds and candidates."""
    candidates = 0
    start = time.perf_counter()
    for objects in texts:
        for chunks in objects:
            stream = classifier.scanner.stream()
            if batch:
                joined = "\n".join(chunks) + "\n"
                for i in range(0, len(joined), batch):
                    candidates += len(stream.feed(joined[i : i + batch]))
            else:
                for text in chunks:
                    candidates += len(stream.feed(text + "\n"))
            candidates += len(stream.finish())
    return time.perf_counter() - start, candidates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("small", "full"), default="small")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="generate the corpus here and keep it")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (best is shown)")
    parser.add_argument("--engine", choices=("auto", "hyperscan", "re"), default="auto")
    args = parser.parse_args(argv)
    command = "benchmarks/classify_eval.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    with tempfile.TemporaryDirectory(prefix="classify-eval-") as tmp:
        corpus = args.out if args.out is not None else Path(tmp)
        start = time.perf_counter()
        generate(corpus, args.seed, args.scale)
        made = time.perf_counter() - start
        evaluate(corpus, args.repeat, args.engine)
        print(f"\nCorpus generated in {made:.1f} s. Command: `.venv/bin/python {command}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
