#!/usr/bin/env python3
"""Time the reference parser (cgm-format 0.13.0) on real exports.

What is timed per repetition is what glurpc's `convert` does with an upload:
FormatParser.parse_from_bytes(data) (decode, detect, parse to the unified frame), then
DataFrame.write_csv() and sha256 of the CSV text (the content handle). Reading the file
is not timed. Each file gets warm-up runs first, then N timed repetitions; the median and
minimum wall-clock time are reported in milliseconds.

    .venv-ref/bin/python tools/bench_cgm_format.py                  # table
    .venv-ref/bin/python tools/bench_cgm_format.py --json           # JSON on stdout
    .venv-ref/bin/python tools/bench_cgm_format.py -n 50 --warmup 5 FILE...

polars runs multi-threaded; set POLARS_MAX_THREADS to pin the thread pool when comparing
with a single-threaded implementation.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import polars as pl
from cgm_format import FormatParser

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = [
    ROOT / "tests" / "data" / "real" / "dexcom_us_14d.csv",
    ROOT / "tests" / "data" / "real" / "libre_eu_1y.csv",
]


def convert(data: bytes) -> tuple[str, int]:
    df = FormatParser.parse_from_bytes(data)
    handle = hashlib.sha256(df.write_csv().encode("utf-8")).hexdigest()
    return handle, df.height


def bench(path: Path, warmup: int, repeats: int) -> dict:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    handle, rows = convert(data)
    for _ in range(max(0, warmup - 1)):
        convert(data)
    times_ms = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        convert(data)
        times_ms.append((time.perf_counter_ns() - t0) / 1e6)
    return {
        "file": path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path),
        "bytes": len(data),
        "rows": rows,
        "handle": handle,
        "repeats": repeats,
        "warmup": warmup,
        "median_ms": round(statistics.median(times_ms), 3),
        "min_ms": round(min(times_ms), 3),
        "mean_ms": round(statistics.fmean(times_ms), 3),
        "max_ms": round(max(times_ms), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="files to time (default: Dexcom 14 d, Libre EU 1 y)")
    ap.add_argument("-n", "--repeats", type=int, default=20, help="timed repetitions per file (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per file first (default 3)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()

    # The reference logs warnings (e.g. ambiguous dates) on every parse; keep output clean.
    logging.disable(logging.WARNING)

    files = [f.resolve() for f in (args.files or DEFAULT_FILES)]
    results = [bench(f, args.warmup, args.repeats) for f in files]
    try:
        from importlib.metadata import version
        cgm_version = version("cgm-format")
    except Exception:  # noqa: BLE001
        cgm_version = "unknown"
    env = {
        "cgm_format": cgm_version,
        "polars": pl.__version__,
        "polars_threads": pl.thread_pool_size(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
    if args.json:
        json.dump({"environment": env, "results": results}, sys.stdout, indent=2)
        print()
    else:
        print(f"cgm-format {env['cgm_format']}, polars {env['polars']} ({env['polars_threads']} threads), "
              f"Python {env['python']}, {env['cpus']} CPUs")
        print(f"{'file':40s} {'rows':>7s} {'median ms':>10s} {'min ms':>9s}  (n={args.repeats}, warm-up {args.warmup})")
        for r in results:
            print(f"{r['file']:40s} {r['rows']:7d} {r['median_ms']:10.2f} {r['min_ms']:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
