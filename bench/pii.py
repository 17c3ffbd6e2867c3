"""Speed and agreement of assay's ``pii`` step against datatrove 0.10.1's ``PIIFormatter``.

Both sides rewrite the same texts in one process, interleaved over ``--reps`` repetitions
(datatrove's ``format`` on each text; assay's ``Pii.compute`` on batches of 1,000 texts,
what a pipeline runs without the Arrow conversion), and the script prints the median
single-process docs/s of each, with the ratio. assay runs twice: on e-mails and IPs only
(datatrove's task) and with all five types. Times are process CPU time, so other jobs on a
shared machine slow both sides alike; the load average is printed before and after.

Agreement compares what each side replaces, document by document (as multisets of the
replaced strings): e-mail addresses, and IPv4 addresses (datatrove finds no IPv6). For
each: found by both, by assay only, by datatrove only, the overlap (both / union), and the
most frequent differences. The differences are by design:

* assay reads a dotted quad of one-digit numbers, or one under 100 written as a heading or
  cross-reference ("12.2.2.2. Title", "see 11.7.3.1 – ..."), as a section number, and a
  dotted quad after "version", "rev" or "Product/" as a version; datatrove replaces them.
  It also leaves multicast addresses (224.0.0.0/4, not personal) and quads inside longer
  dotted numbers or host names (``1.2.3.4.5``, ``1.0.0.127.in-addr.arpa``).
* assay's e-mail local part starts with a letter, digit or "_" and has no "/", "=", "?",
  "&": datatrove takes "example.com/foo@bar.com" or "email=ann@x.org" whole, assay the
  address only; its top-level domain is letters, not a file type or systemd unit
  ("logo@2x.png", "getty@tty1.service").

Usage::

    python bench/pii.py [CORPUS ...] [--limit N] [--reps R] [--show K]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from assay.steps.transforms.pii import Pii

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "sample_text.jsonl.gz"
BENCH_CORPUS = Path.home() / ".cache" / "assay-bench" / "corpus" / "base.jsonl"
BATCH = 1000


def load(path: Path, limit: int | None) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if limit is not None and len(texts) >= limit:
                break
    return texts


# -- the two sides -----------------------------------------------------------------------


def datatrove_formatter() -> object:
    from datatrove.pipeline.formatters import PIIFormatter

    return PIIFormatter()


def time_datatrove(texts: list[str]) -> float:
    formatter = datatrove_formatter()
    start = time.process_time()
    for text in texts:
        formatter.format(text)  # type: ignore[attr-defined]
    return time.process_time() - start


def time_assay(texts: list[str], types: tuple[str, ...] | None) -> float:
    step = Pii(types=types) if types else Pii()
    step.ensure_setup()
    start = time.process_time()
    for i in range(0, len(texts), BATCH):
        step.compute(texts[i : i + BATCH])
    return time.process_time() - start


def datatrove_detections(texts: list[str]) -> list[tuple[Counter[str], Counter[str]]]:
    """(e-mails, IPs) datatrove replaces in each text, as its formatter finds them: e-mails
    in the text, then valid public IPs in the text with its e-mails replaced."""
    formatter = datatrove_formatter()
    emails_replacer = formatter.emails_replacer  # type: ignore[attr-defined]
    ip_replacer = formatter.ip_replacer  # type: ignore[attr-defined]
    out = []
    for text in texts:
        emails = Counter(m.group() for m in emails_replacer.regex.finditer(text))
        after = emails_replacer.replace(text)
        ips = Counter(
            m.group() for m in ip_replacer.regex.finditer(after) if ip_replacer.validator(m.group())
        )
        out.append((emails, ips))
    return out


def assay_detections(texts: list[str]) -> tuple[list[tuple[Counter[str], Counter[str]]], int]:
    """(e-mails, IPv4s) assay replaces in each text, and the number of IPv6 addresses."""
    step = Pii(types=("email", "ip"))
    out = []
    ipv6 = 0
    for text in texts:
        emails: Counter[str] = Counter()
        ips: Counter[str] = Counter()
        for d in step.find(text):
            value = text[d.start : d.end]
            if d.kind == "email":
                emails[value] += 1
            elif ":" in value:
                ipv6 += 1
            else:
                ips[value] += 1
        out.append((emails, ips))
    return out, ipv6


# -- report ------------------------------------------------------------------------------


def agreement(
    name: str,
    assay: list[Counter[str]],
    datatrove: list[Counter[str]],
    show: int,
) -> None:
    both = only_a = only_d = 0
    diff_a: Counter[str] = Counter()
    diff_d: Counter[str] = Counter()
    for a, d in zip(assay, datatrove, strict=True):
        common = a & d
        both += sum(common.values())
        only_a += sum((a - common).values())
        only_d += sum((d - common).values())
        diff_a.update(a - common)
        diff_d.update(d - common)
    union = both + only_a + only_d
    overlap = 100 * both / union if union else 100.0
    print(
        f"{name:<6} both {both:>7}  assay only {only_a:>6}  datatrove only {only_d:>6}  "
        f"overlap {overlap:6.2f}%"
    )
    if diff_a:
        listed = ", ".join(f"{v!r} x{c}" for v, c in diff_a.most_common(show))
        print(f"       assay only, most frequent: {listed}")
    if diff_d:
        listed = ", ".join(f"{v!r} x{c}" for v, c in diff_d.most_common(show))
        print(f"       datatrove only, most frequent: {listed}")


def compare(corpus: Path, limit: int | None, reps: int, show: int) -> None:
    texts = load(corpus, limit)
    print(f"\n## {corpus} ({len(texts)} docs, {sum(map(len, texts)) / 1e6:.1f} M chars)\n")
    runs: dict[str, Callable[[], float]] = {
        "datatrove PIIFormatter": lambda: time_datatrove(texts),
        "assay pii (email, ip)": lambda: time_assay(texts, ("email", "ip")),
        "assay pii (all five)": lambda: time_assay(texts, None),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            seconds[name].append(run())
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    base = medians["datatrove PIIFormatter"]
    print(f"{'side':<24} {'docs/s':>9} {'CPU s (median)':>15} {'ratio vs datatrove':>19}")
    for name, s in medians.items():
        print(f"{name:<24} {len(texts) / s:>9.1f} {s:>15.2f} {base / s:>19.2f}")

    print("\nagreement on what is replaced (assay vs datatrove):")
    dt = datatrove_detections(texts)
    ours, ipv6 = assay_detections(texts)
    agreement("email", [a[0] for a in ours], [d[0] for d in dt], show)
    agreement("ipv4", [a[1] for a in ours], [d[1] for d in dt], show)
    print(f"       assay also replaces {ipv6} IPv6 addresses (datatrove looks for IPv4 only)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpora", nargs="*", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="first N documents only")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--show", type=int, default=8, help="differences to list per side")
    args = parser.parse_args(argv)
    corpora = args.corpora or [p for p in (SAMPLE, BENCH_CORPUS) if p.exists()]
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}; times are process CPU time")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for corpus in corpora:
        compare(corpus, args.limit, args.reps, args.show)
    print("\nload average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
