#!/usr/bin/env python3
"""Time the reference's preprocessing pipeline, from the unified frame to the model dataset.

What is timed is exactly what gluRPC 0.6.3 runs for POST /process_unified after parsing
(glurpc/core.py parse_and_schedule, then the inference worker in glurpc/engine.py):

  analyse   glurpc.logic.analyse_and_prepare_df(df, 540, max): detect_and_assign_sequences ->
            interpolate_gaps -> synchronize_timestamps -> prepare_for_inference(540, max) ->
            to_data_only_df(False, True, True)  (cgm-format 0.13.0)
  dataset   glurpc.logic.create_dataset_from_df(window, flags): to_data_only_df again, pandas,
            glucobench interpolate + encode, darts TimeSeries, two ScalerCustom fits and
            transforms, SamplingDatasetInferenceDual(96, 12)
  total     analyse + dataset, as one call sequence (dataset only when the service would build
            it, i.e. L - 107 > 0; otherwise the service answers with an error after analyse)

Parsing is excluded: each file is parsed once with FormatParser (parse_from_bytes; .gz is
decompressed first) before timing. Each timed run starts from the same parsed frame. Also
reported, from separate runs, the time of each FormatProcessor stage on its own (detect,
interpolate, sync, prepare, to_data_only) for a breakdown.

    /tmp/ref/venv-pipe/bin/python tools/bench_pipeline.py                  # Libre 1 y + Medtronic 86 d
    /tmp/ref/venv-pipe/bin/python tools/bench_pipeline.py -n 30 --warmup 3 --json
    /tmp/ref/venv-pipe/bin/python tools/bench_pipeline.py --max 540 tests/data/real/dexcom_us_14d.csv
    POLARS_MAX_THREADS=1 /tmp/ref/venv-pipe/bin/python tools/bench_pipeline.py
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = [ROOT / "tests/data/real/libre_eu_1y.csv", ROOT / "tests/data/real/medtronic_86d.csv.gz"]


class _Null(io.TextIOBase):
    def write(self, s):  # glucobench prints progress to stdout; swallow it cheaply
        return len(s)


def timed(fn, n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def stats(samples: list[float]) -> dict:
    return {"median_ms": round(statistics.median(samples), 3), "min_ms": round(min(samples), 3),
            "runs": len(samples)}


def bench_file(path: Path, n: int, warmup: int, min_d: int, max_d: int) -> dict:
    from cgm_format import FormatParser, FormatProcessor
    from glurpc import logic

    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    unified = FormatParser.parse_from_bytes(data)
    sink = _Null()

    with contextlib.redirect_stdout(sink):
        window, flags, L = logic.analyse_and_prepare_df(unified, min_d, max_d)
    expected = L - 107
    builds_dataset = expected > 0

    def total():
        with contextlib.redirect_stdout(sink):
            w, f, n_rows = logic.analyse_and_prepare_df(unified, min_d, max_d)
            if n_rows - 107 > 0:
                r = logic.create_dataset_from_df(w, f)
                assert r["success"], r.get("error")

    def analyse():
        with contextlib.redirect_stdout(sink):
            logic.analyse_and_prepare_df(unified, min_d, max_d)

    def dataset():
        with contextlib.redirect_stdout(sink):
            r = logic.create_dataset_from_df(window, flags)
            assert r["success"], r.get("error")

    res = {
        "file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "unified_rows": unified.height,
        "window_rows": window.height,
        "L": L,
        "N": max(expected, 0),
        "warning_flags": flags.value,
        "service_builds_dataset": builds_dataset,
        "total": stats(timed(total, n, warmup)),
        "analyse": stats(timed(analyse, n, warmup)),
        "dataset": stats(timed(dataset, n, warmup)) if builds_dataset else None,
    }

    # Stage breakdown (the same calls analyse_and_prepare_df makes, one at a time).
    s1 = FormatProcessor.detect_and_assign_sequences(unified)
    s2 = FormatProcessor.interpolate_gaps(s1)
    s3 = FormatProcessor.synchronize_timestamps(s2)
    from cgm_format.interface.cgm_interface import ValidationMethod
    vm = ValidationMethod.INPUT | ValidationMethod.OUTPUT
    s4, _ = FormatProcessor.prepare_for_inference(s3, minimum_duration_minutes=min_d,
                                                  maximum_wanted_duration=max_d, validation_mode=vm)
    res["stages"] = {
        "detect": stats(timed(lambda: FormatProcessor.detect_and_assign_sequences(unified), n, warmup)),
        "interpolate": stats(timed(lambda: FormatProcessor.interpolate_gaps(s1), n, warmup)),
        "sync": stats(timed(lambda: FormatProcessor.synchronize_timestamps(s2), n, warmup)),
        "prepare": stats(timed(lambda: FormatProcessor.prepare_for_inference(
            s3, minimum_duration_minutes=min_d, maximum_wanted_duration=max_d, validation_mode=vm), n, warmup)),
        "to_data_only": stats(timed(lambda: FormatProcessor.to_data_only_df(s4, False, True, True), n, warmup)),
    }
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help="input files (default: Libre EU 1 y, Medtronic 86 d)")
    ap.add_argument("-n", type=int, default=20, help="timed runs per measurement (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    ap.add_argument("--min", dest="min_d", type=int, default=540, help="minimum duration (default 540)")
    ap.add_argument("--max", dest="max_d", type=int, default=1080, help="maximum wanted duration (default 1080)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    with contextlib.redirect_stdout(_Null()):
        from glurpc import logic  # noqa: F401  (slow import: torch, darts)
    logging.disable(logging.CRITICAL)
    from importlib.metadata import version

    files = [f.resolve() for f in args.files] or DEFAULT_FILES
    out = {
        "reference": {p: version(p) for p in ("cgm-format", "glurpc", "glucosedao-glucobench", "darts",
                                               "polars", "pandas", "numpy")},
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "polars_max_threads": os.environ.get("POLARS_MAX_THREADS", "default"),
        "min": args.min_d, "max": args.max_d, "runs": args.n, "warmup": args.warmup,
        "results": [bench_file(f, args.n, args.warmup, args.min_d, args.max_d) for f in files],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"reference pipeline (unified frame -> dataset), min {args.min_d} max {args.max_d}, "
          f"{args.n} runs after {args.warmup} warm-up, {out['machine']}, polars threads {out['polars_max_threads']}")
    for r in out["results"]:
        print(f"\n{r['file']}: {r['unified_rows']} rows -> window {r['window_rows']} rows, L={r['L']}, "
              f"N={r['N']}, flags={r['warning_flags']}")
        print(f"  total     median {r['total']['median_ms']:9.2f} ms   min {r['total']['min_ms']:9.2f} ms"
              + ("" if r["service_builds_dataset"] else "   (no dataset: the service stops at L - 107 <= 0)"))
        print(f"  analyse   median {r['analyse']['median_ms']:9.2f} ms   min {r['analyse']['min_ms']:9.2f} ms")
        if r["dataset"]:
            print(f"  dataset   median {r['dataset']['median_ms']:9.2f} ms   min {r['dataset']['min_ms']:9.2f} ms")
        for k, v in r["stages"].items():
            print(f"    {k:12s} median {v['median_ms']:9.2f} ms   min {v['min_ms']:9.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
