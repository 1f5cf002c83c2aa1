#!/usr/bin/env python3
"""Plot goldens: gluRPC 0.6.3's own `logic.calculate_plot_data` on fixed synthetic windows.

For each case a deterministic (seeded numpy) window in mg/dL is wrapped into the reference's
own data classes (`PredictionsData` with a one-series `DartsDataset`, ISO `time_index` and an
identity target scaler, min 0 and scale 1, so `(x - min) / scale` returns the mg/dL values
bit for bit), and `calculate_plot_data(predictions, 0)` is called unchanged. It returns the
Plotly figure string (`fig.to_json()`, plotly 5.24.1, datetime x axis) and the `PlotData` with
the KDE fans (scipy `gaussian_kde`), which are written next to numpy's quantiles:

  tests/data/plot/<case>.input.json          the window as the Rust `plot::PlotData` takes it
                                             (times in ms since the epoch, naive UTC)
  tests/data/plot/<case>.reference.json.gz   {"figure": <fig.to_json() string, verbatim>,
                                              "fans": [{"step", "fillcolor", "grid", "density"}],
                                              "skipped_steps", "median", "quantiles", "std"}

plus tests/data/plot/python_formatting.json: Python's own `repr(float)`, CPython's
`timedelta(minutes=m)` in microseconds and `datetime.isoformat()` on values chosen to hit
the edge cases (exponent switch-over, halfway microseconds, dates before 1970 and after 9999).

Cases (every one has at least one step whose samples are all equal, which the reference skips):
  regular      S = 10, 5-minute grid on whole minutes, step 4 all equal
  irregular    S = 10, times with milliseconds (ISO strings with microseconds), step 0 all
               equal and step 7 with a spread below 1e-6 (both skipped), step 3 with a
               spread of about 2e-5 (kept; its KDE underflows to all zeros, so the fan has
               no width), one wide step (9)
  many         S = 32 samples per step, step 11 all equal

    /tmp/ref/venv-pipe/bin/python tools/make_plot_goldens.py [--check]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import io
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "plot"

EXPECTED = {"glurpc": "0.6.3", "plotly": "5.24.1", "numpy": "1.26.4", "scipy": "1.17.1"}
QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95]
HISTORY = 96
HORIZON = 12
EPOCH = dt.datetime(1970, 1, 1)


def load_reference():
    from importlib.metadata import version

    for pkg, want in EXPECTED.items():
        have = version(pkg)
        if have != want:
            raise SystemExit(f"{pkg} {have} installed, {want} required")
    with contextlib.redirect_stdout(io.StringIO()):
        from glurpc import logic  # noqa: F401
    logging.disable(logging.CRITICAL)


def make_case(name: str, seed: int, start: dt.datetime, step_jitter_ms: int, n_samples: int,
              equal_steps: list[int], tiny_steps: list[int], wide_steps: list[int],
              narrow_steps: list[int]) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    # 108 readings: a smooth random walk in mg/dL (96 history + 12 measured futures)
    walk = np.cumsum(rng.normal(0.0, 2.5, HISTORY + HORIZON))
    series = 140.0 + 35.0 * np.sin(np.arange(HISTORY + HORIZON) / 17.0) + walk
    times = []
    t = start
    for i in range(HISTORY + HORIZON):
        times.append(t)
        jitter = int(rng.integers(-step_jitter_ms, step_jitter_ms + 1)) if step_jitter_ms else 0
        t = t + dt.timedelta(minutes=5, milliseconds=jitter)
    last = series[HISTORY - 1]
    samples = np.empty((n_samples, HORIZON))
    for p in range(HORIZON):
        centre = last + (series[HISTORY + p] - last) * 0.7 + rng.normal(0, 3)
        spread = 2.0 + 1.2 * p
        if p in wide_steps:
            spread = 40.0
        samples[:, p] = centre + rng.normal(0.0, spread, n_samples)
        if p in equal_steps:
            samples[:, p] = round(centre, 3)
        if p in tiny_steps:
            samples[:, p] = centre + rng.normal(0.0, 1e-8, n_samples)
        if p in narrow_steps:
            samples[:, p] = centre + rng.normal(0.0, 2e-5, n_samples)
    ms = [int((x - EPOCH) / dt.timedelta(milliseconds=1)) for x in times]
    return {
        "handle": f"{name}-" + "0123456789abcdef" * 3,
        "index": 0,
        "history_times": ms[:HISTORY],
        "history": series[:HISTORY].tolist(),
        "forecast_times": ms[HISTORY:],
        "samples": samples.tolist(),
        "actual": series[HISTORY:].tolist(),
        "warnings": [],
        "_iso": [x.isoformat() for x in times],
    }


def python_formatting() -> dict:
    import numpy as np

    rng = np.random.default_rng(44)
    floats = [0.0, -0.0, 1.0, 0.1, 1 / 12, 1e-4, 9.999e-5, 1e-5, 1e15, 9.999999999999998e15, 1e16,
              123456789012345678.0, 5e-324, 1.7976931348623157e308, 2.5e-300, -1.5e-7, 600000.0]
    floats += (rng.normal(0, 1, 40) * 10.0 ** rng.integers(-12, 20, 40)).tolist()
    floats += (rng.uniform(40, 400, 20)).tolist()
    minutes = [0.0, 4.5, 1 / 60, 2.5 / 60e6, 3.5 / 60e6, 0.5 / 60e6, 1.5 / 60e6, 1e-12]
    minutes += (rng.uniform(0, 1, 60) * 4.5).tolist()
    minutes += [float(d) * 4.5 for d in rng.uniform(0, 1, 20).astype(np.float32)]
    micros = [0, 1, -1, 999_999, 1_714_550_397_413_250, -62_135_596_800_000_000 + 600_000_000,
              253_402_300_799_999_000, 951_782_400_000_000, -2_208_988_800_000_001]
    def td_us(m):
        d = dt.timedelta(minutes=m)
        return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    # floats as repr strings: the Rust side parses them with a correctly rounded parser
    return {
        "float_repr": [repr(float(x)) for x in floats],
        "timedelta_minutes_us": [[repr(float(m)), td_us(m)] for m in minutes],
        "isoformat_us": [[u, (EPOCH + dt.timedelta(microseconds=u)).isoformat()] for u in micros],
    }


def reference(case: dict) -> dict:
    import numpy as np
    from glurpc import logic
    from glurpc.data_classes import DartsDataset, DartsScaler, PredictionsData

    series = np.array(case["history"] + case["actual"], dtype=np.float64).reshape(-1, 1)
    samples = np.array(case["samples"], dtype=np.float64)  # (S, 12)
    dataset = DartsDataset(
        target_series=[series],
        time_index=[case["_iso"]],
        n=HORIZON,
        input_chunk_length=HISTORY,
        output_chunk_length=HORIZON,
    )
    predictions = PredictionsData(
        len_pred=HORIZON,
        first_index=0,
        num_samples=samples.shape[0],
        time_step=5,
        predictions=samples.T.reshape(1, HORIZON, samples.shape[0]),  # (N, 12, S)
        dataset=dataset,
        target_scaler=DartsScaler(min=np.zeros(1), scale=np.ones(1)),
    )
    figure, plot_data = logic.calculate_plot_data(predictions, 0)
    kept = [f.time_index for f in plot_data.fan_charts]
    return {
        "figure": figure,
        "fans": [{"step": f.time_index, "fillcolor": f.fillcolor, "grid": f.y, "density": f.x}
                 for f in plot_data.fan_charts],
        "skipped_steps": [p for p in range(HORIZON) if p not in kept],
        "median": plot_data.median_y[1:],
        "quantiles": {str(q): np.quantile(samples, q, axis=0).tolist() for q in QUANTILES},
        "std": np.std(samples, axis=0).tolist(),
    }


CASES = [
    dict(name="regular", seed=11, start=dt.datetime(2024, 5, 1, 0, 0, 0), step_jitter_ms=0,
         n_samples=10, equal_steps=[4], tiny_steps=[], wide_steps=[], narrow_steps=[]),
    dict(name="irregular", seed=22, start=dt.datetime(2024, 12, 31, 19, 12, 57, 413000),
         step_jitter_ms=900, n_samples=10, equal_steps=[0], tiny_steps=[7], wide_steps=[9],
         narrow_steps=[3]),
    dict(name="many", seed=33, start=dt.datetime(2023, 3, 26, 0, 30, 0), step_jitter_ms=0,
         n_samples=32, equal_steps=[11], tiny_steps=[], wide_steps=[], narrow_steps=[]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = ap.parse_args()
    load_reference()
    files = {}
    for spec in CASES:
        case = make_case(**spec)
        ref = reference(case)
        del case["_iso"]
        files[OUT / f"{spec['name']}.input.json"] = (json.dumps(case) + "\n").encode()
        # mtime 0 so the gzip bytes are reproducible
        files[OUT / f"{spec['name']}.reference.json.gz"] = gzip.compress(
            (json.dumps(ref) + "\n").encode(), compresslevel=9, mtime=0)
        print(f"{spec['name']}: {len(ref['fans'])} fans, skipped {ref['skipped_steps']}, "
              f"figure {len(ref['figure'])} bytes", file=sys.stderr)
    files[OUT / "python_formatting.json"] = (json.dumps(python_formatting()) + "\n").encode()
    drift = []
    OUT.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                drift.append(path)
        else:
            path.write_bytes(data)
    for path in drift:
        print(f"differs: {path.relative_to(ROOT)}", file=sys.stderr)
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
