#!/usr/bin/env python3
"""Write reference goldens for every fixture in tests/data/real and tests/data/synthetic.

The reference is cgm-format 0.13.0 (pinned, with its polars, in
tools/requirements-goldens.txt). For every fixture this writes into tests/data/golden/:

  <stem>.json             summary: detected format, row count, event counts, content
                          handle (sha256 of the unified CSV), first/last datetime, and
                          whether the reference parsed the file as given
  <stem>.unified.csv.gz   the unified CSV exactly as polars' DataFrame.write_csv() writes
                          it, gzipped deterministically (mtime 0, no file name)

CSV fixtures go through FormatParser.parse_from_bytes (decode, detect, parse), as the
reference service does with an upload (.gz fixtures are decompressed first). Nightscout
JSON is never auto-detected by the reference, so JSON fixtures go through
FormatParser.parse_nightscout(entries[, treatments]).

Where the reference fails on a fixture that our port must accept (Libre Pro "Patient
report" layout, 12-hour AM/PM times, Nightscout offsets), the error is recorded and the
golden is produced by the reference from a *normalised* copy of the input that carries the
same information in a form the reference parses; that copy is written to
tests/data/golden/normalised/ and the summary says "source": "reference-on-normalised-input".

The script is idempotent (same bytes every run), uses no network, and fails if a real
file's handle differs from the table in the shared data README.

    .venv-ref/bin/python tools/make_format_goldens.py            # write goldens
    .venv-ref/bin/python tools/make_format_goldens.py --check    # compare only
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Optional

import polars as pl
from cgm_format import FormatParser

try:
    from importlib.metadata import version as _pkg_version
except ImportError:  # pragma: no cover
    _pkg_version = None

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
REAL = DATA / "real"
SYNTH = DATA / "synthetic"
GOLDEN = DATA / "golden"
NORMALISED = GOLDEN / "normalised"

EXPECTED_CGM_FORMAT = "0.13.0"

# Handles of the real files, from the shared data README (cgm-format 0.13.0).
EXPECTED_REAL_HANDLES = {
    "dexcom_us_14d": "5c6d1eae4ea4776595ab02785ab63ee90e8ef295ae73b345e2864ebfb1d79a78",
    "libre_eu_1y": "20e8b488d518e531583c380ef52f404ad91be45c10e0380a52cca45aeb63e0be",
    "medtronic_86d": "13e4b31744d1674ad7cd29df584c8e32d22d701a9f91a3880412435b05a9a992",
    "nightscout_exporter": "9c2df82a1c12cbdc0c0bcb212bf26ab986d34c8273491a3d44593a8659a692fa",
    "nightscout_entries_treatments": "9137f925ee9f20175eb9b5a2de76828e53bd92ab7aae1e01858799dcb18cd7c3",
}

# Fixtures the reference is expected to reject as given (stem -> normaliser).
# Filled in below, after the normaliser functions.
NORMALISERS: dict[str, Callable[[bytes], bytes]] = {}


# ======================================================================================
# Normalisers: same information, in a form cgm-format 0.13.0 parses.
# ======================================================================================
def _split_lines(data: bytes) -> tuple[list[str], str, bool]:
    bom = data.startswith(b"\xef\xbb\xbf")
    text = data[3:].decode("utf-8") if bom else data.decode("utf-8")
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(eol)
    return lines, eol, bom


def _join_lines(lines: list[str], eol: str, bom: bool) -> bytes:
    data = eol.join(lines).encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


_AMPM = re.compile(r"^(\d{2})-(\d{2})-(\d{4}) (\d{1,2}):(\d{2}) ([AP]M)$")


def _libre_ampm_to_dayfirst_24h(stamp: str) -> str:
    """'MM-DD-YYYY hh:mm AM/PM' (US, 12-hour) -> 'DD-MM-YYYY HH:MM' (24-hour, day first).

    12:xx AM is 00:xx and 12:xx PM is 12:xx. Day-first is the format the reference probes
    first, so every normalised row parses with one format whatever its day.
    """
    m = _AMPM.match(stamp)
    if not m:
        raise ValueError(f"not a MM-DD-YYYY hh:mm AM/PM time: {stamp!r}")
    month, day, year, hour, minute, half = m.groups()
    h = int(hour) % 12 + (12 if half == "PM" else 0)
    return f"{day}-{month}-{year} {h:02d}:{minute}"


def _libre_normalise(data: bytes, drop_extra_line: bool) -> bytes:
    import csv

    lines, eol, bom = _split_lines(data)
    header_idx = next(i for i, line in enumerate(lines) if line.startswith("Device,Serial Number,Device Timestamp"))
    if drop_extra_line:
        # Keep exactly one line (the title) before the header, as the reference expects.
        lines = [lines[0]] + lines[header_idx:]
        header_idx = 1
    elif header_idx != 1:
        raise ValueError("expected the header on line 2")
    header = next(csv.reader([lines[header_idx]]))
    ts_col = header.index("Device Timestamp")
    out = lines[: header_idx + 1]
    for line in lines[header_idx + 1:]:
        if not line:
            out.append(line)
            continue
        # Rewrite only the timestamp cell, leaving every other byte of the row unchanged.
        cells = next(csv.reader([line]))
        stamp = cells[ts_col]
        pieces = line.split(",")
        # Device, Serial Number and Device Timestamp never contain commas or quotes.
        assert pieces[ts_col] == stamp, (pieces[ts_col], stamp)
        pieces[ts_col] = _libre_ampm_to_dayfirst_24h(stamp)
        out.append(",".join(pieces))
    return _join_lines(out, eol, bom)


def normalise_libre_pro_patient_report(data: bytes) -> bytes:
    return _libre_normalise(data, drop_extra_line=True)


def normalise_libre_us_ampm(data: bytes) -> bytes:
    return _libre_normalise(data, drop_extra_line=False)


_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def _iso_to_utc_z(stamp: str) -> str:
    """ISO 8601 with Z or a numeric offset (+0100, +01:00) -> UTC 'YYYY-MM-DDTHH:MM:SS.mmmZ'.

    Our behaviour for offsets: convert the instant to UTC and keep it naive, which is what
    the reference already does for the (usual) 'Z' form, so JSON times are always UTC.
    """
    m = _OFFSET.match(stamp)
    if not m:
        raise ValueError(f"not an ISO 8601 time with offset: {stamp!r}")
    base, frac, off = m.groups()
    t = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    if frac:
        t += timedelta(microseconds=int(round(float(frac) * 1_000_000)))
    if off != "Z":
        sign = 1 if off[0] == "+" else -1
        digits = off[1:].replace(":", "")
        t -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def normalise_nightscout_offsets(data: bytes) -> bytes:
    records = json.loads(data.decode("utf-8"))
    for rec in records:
        for key in ("dateString", "sysTime"):
            if isinstance(rec.get(key), str):
                rec[key] = _iso_to_utc_z(rec[key])
    return (json.dumps(records, indent=2) + "\n").encode("utf-8")


NORMALISERS.update({
    "libre_pro_patient_report": normalise_libre_pro_patient_report,
    "libre_us_ampm": normalise_libre_us_ampm,
    "nightscout_entries_offset": normalise_nightscout_offsets,
})


# ======================================================================================
# Jobs
# ======================================================================================
@dataclass
class Job:
    stem: str
    files: list[Path]           # one file, or entries + treatments for the Nightscout pair
    kind: str                   # "bytes" (parse_from_bytes) or "nightscout" (parse_nightscout)
    normaliser: Optional[Callable[[bytes], bytes]] = None
    payloads: list[bytes] = field(default_factory=list)


def read_payload(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def stem_of(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.rsplit(".", 1)[0]


def collect_jobs() -> list[Job]:
    jobs: list[Job] = []
    for folder in (REAL, SYNTH):
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            stem = stem_of(path)
            inner = path.name[:-3] if path.name.endswith(".gz") else path.name
            if stem == "nightscout_treatments":
                continue  # only meaningful together with entries (see below)
            if inner.endswith(".json"):
                jobs.append(Job(stem, [path], "nightscout", NORMALISERS.get(stem)))
                if stem == "nightscout_entries":
                    treatments = folder / "nightscout_treatments.json.gz"
                    jobs.append(Job("nightscout_entries_treatments", [path, treatments], "nightscout"))
            elif inner.endswith(".csv"):
                jobs.append(Job(stem, [path], "bytes", NORMALISERS.get(stem)))
            else:
                raise SystemExit(f"unexpected fixture type: {path}")
    stems = [j.stem for j in jobs]
    dupes = {s for s in stems if stems.count(s) > 1}
    if dupes:
        raise SystemExit(f"duplicate golden stems: {sorted(dupes)}")
    return jobs


def run_reference(kind: str, payloads: list[bytes]) -> pl.DataFrame:
    if kind == "bytes":
        return FormatParser.parse_from_bytes(payloads[0])
    if kind == "nightscout":
        return FormatParser.parse_nightscout(*payloads)
    raise ValueError(kind)


def describe_error(exc: BaseException) -> str:
    message = str(exc).replace("\r\n", " ").replace("\n", " ").replace("\r", " ").strip()
    if len(message) > 400:
        message = message[:397] + "..."
    return f"{type(exc).__name__}: {message}"


def detect(payload: bytes) -> tuple[Optional[str], Optional[str]]:
    try:
        return FormatParser.detect_format(FormatParser.decode_raw_data(payload)).value, None
    except Exception as exc:  # noqa: BLE001 - the reference raises several types
        return None, describe_error(exc)


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def rel(path: Path) -> str:
    return path.relative_to(DATA).as_posix()


def build(job: Job) -> tuple[dict, bytes, Optional[tuple[str, bytes]]]:
    payloads = [read_payload(p) for p in job.files]
    detected, detect_error = detect(payloads[0])
    reference_error = None
    normalised_out = None
    try:
        df = run_reference(job.kind, payloads)
        source = "reference"
        if job.normaliser is not None:
            raise SystemExit(f"{job.stem}: the reference was expected to fail but parsed the file")
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001
        if job.normaliser is None:
            raise SystemExit(f"{job.stem}: reference failed and no normaliser is registered: "
                             f"{describe_error(exc)}")
        reference_error = describe_error(exc)
        normalised = job.normaliser(payloads[0])
        df = run_reference(job.kind, [normalised] + payloads[1:])
        source = "reference-on-normalised-input"
        inner = job.files[0].name[:-3] if job.files[0].name.endswith(".gz") else job.files[0].name
        normalised_out = (inner, normalised)
        if detected is None:
            detected, _ = detect(normalised)

    if job.kind == "nightscout":
        fmt = "nightscout"  # not auto-detected by the reference; parse_nightscout is its JSON path
        call = "FormatParser.parse_nightscout(entries" + (", treatments)" if len(payloads) > 1 else ")")
    else:
        fmt = detected
        call = "FormatParser.parse_from_bytes(data)"
    if fmt is None:
        raise SystemExit(f"{job.stem}: no format detected")

    csv_text = df.write_csv()
    csv_bytes = csv_text.encode("utf-8")
    handle = hashlib.sha256(csv_bytes).hexdigest()

    # The unified CSV must parse back (as format "unified") to the very same bytes.
    again = FormatParser.parse_from_bytes(csv_bytes).write_csv()
    roundtrip = again == csv_text

    counts = df.group_by("event_type").len().sort("event_type")
    event_counts = {row["event_type"]: row["len"] for row in counts.to_dicts()}
    first = df["datetime"].min()
    last = df["datetime"].max()
    summary = {
        "file": rel(job.files[0]),
        "treatments_file": rel(job.files[1]) if len(job.files) > 1 else None,
        "format": fmt,
        "rows": df.height,
        "event_counts": event_counts,
        "handle": handle,
        "first": first.strftime("%Y-%m-%dT%H:%M:%S"),
        "last": last.strftime("%Y-%m-%dT%H:%M:%S"),
        "source": source,
        "reference_error": reference_error,
        "normalised_input": (rel(NORMALISED / normalised_out[0]) if normalised_out else None),
        "call": call,
        "detect_error": detect_error,
        "unified_roundtrip_identical": roundtrip,
    }
    return summary, csv_bytes, normalised_out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed goldens, write nothing")
    args = ap.parse_args()

    if _pkg_version is not None:
        have = _pkg_version("cgm-format")
        if have != EXPECTED_CGM_FORMAT:
            raise SystemExit(f"cgm-format {EXPECTED_CGM_FORMAT} required, found {have}")

    jobs = collect_jobs()
    outputs: dict[Path, bytes] = {}
    failures: list[str] = []
    for job in jobs:
        summary, csv_bytes, normalised = build(job)
        expected = EXPECTED_REAL_HANDLES.get(job.stem)
        if expected is not None and summary["handle"] != expected:
            failures.append(f"{job.stem}: handle {summary['handle']} != README {expected}")
        if not summary["unified_roundtrip_identical"]:
            print(f"note: {job.stem}: unified CSV does not round-trip byte-identically", file=sys.stderr)
        outputs[GOLDEN / f"{job.stem}.json"] = (json.dumps(summary, indent=2) + "\n").encode("utf-8")
        outputs[GOLDEN / f"{job.stem}.unified.csv.gz"] = gzip_bytes(csv_bytes)
        if normalised is not None:
            outputs[NORMALISED / normalised[0]] = normalised[1]
        status = summary["source"] if summary["reference_error"] is None else \
            f"{summary['source']} (as given: {summary['reference_error'][:80]})"
        print(f"{job.stem:32s} {summary['format']:11s} rows={summary['rows']:6d} "
              f"{summary['handle'][:16]}  {status}")

    missing = [p for p in EXPECTED_REAL_HANDLES if p not in {j.stem for j in jobs}]
    if missing:
        failures.append(f"real fixtures missing: {missing}")
    if failures:
        for f in failures:
            print("FAIL: " + f, file=sys.stderr)
        return 1

    # Anything in golden/ that this run did not produce is stale.
    existing = {p for p in GOLDEN.rglob("*") if p.is_file() and p.name != "README.md"}
    stale = sorted(existing - set(outputs))
    changed = sorted(p for p, data in outputs.items() if not p.exists() or p.read_bytes() != data)
    if args.check:
        for p in changed:
            print(f"differs: {p.relative_to(ROOT)}", file=sys.stderr)
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if (changed or stale) else 0
    for p in changed:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(outputs[p])
    for p in stale:
        p.unlink()
    print(f"{len(changed)} file(s) written, {len(stale)} stale file(s) removed, "
          f"{len(outputs) - len(changed)} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
