#!/usr/bin/env python3
"""Write the small pipeline rule fixtures in tests/data/pipeline_cases/.

Each case is a tiny hand-made unified table (10-60 rows) that isolates one rule of the
reference pipeline (cgm-format 0.13.0 FormatProcessor as gluRPC 0.6.3 calls it). For every
case this writes:

  <case>.csv            the input: the hand-made rows put through the reference's unified
                        parser (FormatParser.parse_from_bytes) and written back with write_csv(),
                        i.e. the canonical 11-column unified CSV
  <case>.processed.csv  detect_and_assign_sequences -> interpolate_gaps -> synchronize_timestamps
  <case>.window.csv     prepare_for_inference(min, max) output (absent when it raises)
  <case>.series.csv     to_data_only_df(window, drop_service_columns=False, drop_duplicates=True,
                        glucose_only=True): what the dataset is built from (absent when it raises)
  <case>.json           what the case exercises, min/max used, sequences, warning flags, the
                        formatted warnings (glurpc FormattedWarnings.from_flags), L, first/last,
                        or the error (ValueError text from glurpc.logic.analyse_and_prepare_df)

The window is computed with glurpc.logic.analyse_and_prepare_df(df, min, max), the exact call
the service makes, only with small min/max so that tiny inputs form windows. Datetimes are on
2024-01-01 unless stated. No network; idempotent.

    /tmp/ref/venv-pipe/bin/python tools/make_pipeline_cases.py            # write
    /tmp/ref/venv-pipe/bin/python tools/make_pipeline_cases.py --check    # compare only
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import warnings
from datetime import datetime, timedelta
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "pipeline_cases"

HEADER = "sequence_id,event_type,quality,datetime,glucose,carbs,insulin_slow,insulin_fast"
T0 = datetime(2024, 1, 1, 8, 0, 0)


def at(minutes: float = 0, seconds: float = 0, base: datetime = T0) -> datetime:
    return base + timedelta(minutes=minutes, seconds=seconds)


def ts(t: datetime) -> str:
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += f".{t.microsecond // 1000:03d}"
    return s


def egv(t: datetime, g, quality: int = 0) -> str:
    gs = "" if g is None else f"{g:g}"
    return f"0,EGV_READ,{quality},{ts(t)},{gs},,,"


def carbs(t: datetime, grams: float) -> str:
    return f"0,CARBS_IN,0,{ts(t)},,{grams:g},,"


def ins_fast(t: datetime, units: float) -> str:
    return f"0,INS_FAST,0,{ts(t)},,,,{units:g}"


def ins_slow(t: datetime, units: float) -> str:
    return f"0,INS_SLOW,0,{ts(t)},,,{units:g},"


def regular(start: datetime, n: int, g0: float = 100.0, step: float = 2.0, every: float = 5.0) -> list[str]:
    """n readings every `every` minutes from start, glucose g0, g0+step, ..."""
    return [egv(start + timedelta(minutes=every * i), g0 + step * i) for i in range(n)]


# ======================================================================================
# Cases: name -> (description, min_duration, max_duration, rows)
# ======================================================================================
CASES: dict[str, tuple[str, int, int, list[str]]] = {}

CASES["gap_5"] = (
    "Gaps of exactly 5:00 (nothing inserted), 5:30 (> 5 min but both ends round to adjacent grid "
    "points: nothing inserted) and 7:00 (08:20:30 -> 08:27:30: the ends round to 08:20 and 08:30, "
    "so one imputed point at 08:25, quality 4|16|64 = 84). Readings at hh:m2:30 sit exactly half "
    "way between grid points and round UP (08:27:30 -> 08:30). One sequence.",
    30, 60,
    regular(at(0), 4)                              # 08:00 .. 08:15, 5:00 gaps
    + [egv(at(20, 30), 110)]                       # 5:30 after 08:15
    + [egv(at(27, 30), 120)]                       # 7:00 gap -> grid 08:20 and 08:30 -> 08:25 imputed
    + regular(at(32, 30), 6, g0=122),              # 08:32:30 .. 08:57:30
)

CASES["gap_15"] = (
    "A gap of exactly 15:00 is inside a sequence (split only at > 15 min) and is filled with two "
    "imputed grid points (IMPUTATION, quality 4|16|64 = 84 after sync).",
    60, 120,
    regular(at(0), 8)                              # 08:00 .. 08:35
    + regular(at(50), 8, g0=150),                  # 08:50 .. 09:25 (15:00 after 08:35)
)

CASES["gap_15_ms"] = (
    "A gap of 15 min 0.5 s: polars dt.total_seconds() truncates to whole seconds (900), so the "
    "reference neither splits (> 900 s) nor refuses to fill (15.0 <= 15): one sequence, two imputed "
    "points. A port that compares exact milliseconds would split here.",
    60, 120,
    regular(at(0), 8)
    + regular(at(50, 0.5), 8, g0=150),
)

CASES["gap_16"] = (
    "A gap of 16:00 splits into two sequences (1: 08:00..08:35, 2: 08:51..09:26); nothing is "
    "imputed; the newest sequence is long enough and is used. Sequence 2's grid starts at its own "
    "first reading (08:51).",
    30, 60,
    regular(at(0), 8)
    + regular(at(51), 8, g0=150),
)

CASES["duplicates"] = (
    "Duplicate timestamps: two readings at 08:10:00 (100 and 110: the measured-series anchor keeps "
    "the LOWER, and both rows are re-timed to it); 08:20:00 and 08:22:00 both round to 08:20 (re-timed "
    "to the same value); an insulin dose at 08:31 lands on the 08:30 reading's grid point. "
    "mark_time_duplicates flags every row after the first per datetime (quality 8); TIME_DUPLICATES "
    "warning; the series keeps one row per grid point.",
    30, 60,
    [egv(at(0), 90), egv(at(5), 95), egv(at(10), 110), egv(at(10), 100), egv(at(15), 104),
     egv(at(20), 108), egv(at(22), 130), egv(at(25), 112), egv(at(30), 116), ins_fast(at(31), 3),
     egv(at(35), 120), egv(at(40), 124), egv(at(45), 128), egv(at(50), 132)],
)

CASES["off_grid"] = (
    "Readings off the grid. The first reading is 08:02:37, so the grid origin is 08:03:00 (seconds "
    ">= 30 round up) and the grid is 08:03, 08:08, ... (not wall-clock multiples of 5). Each row's "
    "datetime = origin + 5 min * floor(elapsed / 5 min + 0.5), i.e. half up: 08:10:30 is 7:30 after "
    "the origin -> 1.5 + 0.5 -> 2 -> 08:13. Glucose is re-timed: the measured series, linearly "
    "interpolated at the grid instant, clamped to the end readings (08:03:00 lies between readings 1 "
    "and 2; the last reading 08:56:10 maps to 08:58:00, after it, so it keeps 118). The 7:25 gap "
    "08:10:30 -> 08:17:55 maps to adjacent grid points (08:13, 08:18): nothing imputed. "
    "quality 16|64 = 80.",
    30, 60,
    [egv(at(2, 37), 100), egv(at(7, 41), 104), egv(at(10, 30), 108), egv(at(17, 55), 115),
     egv(at(22, 29), 119), egv(at(27, 31), 124), egv(at(32, 59), 130), egv(at(37, 1), 133),
     egv(at(42, 44), 129), egv(at(47, 15), 126), egv(at(52, 45), 121), egv(at(56, 10), 118)],
)

CASES["short_newest"] = (
    "The newest sequence (2: 10 readings, 45 min) is shorter than min 60; the older sequence 1 "
    "(40 readings, 195 min) is used instead, silently (no warning flag), truncated to its last "
    "max = 120 minutes.",
    60, 120,
    regular(at(0), 40, g0=100, step=1)             # 08:00 .. 11:15
    + regular(at(225), 10, g0=150, step=1),        # 11:45 .. 12:30 (30-min gap)
)

CASES["too_short"] = (
    "Every sequence is shorter than min: analyse_and_prepare_df raises ValueError('Data quality "
    "issue: No valid sequences found. Tried 2 sequences, none met minimum duration of 60 minutes "
    "with glucose data.').",
    60, 120,
    regular(at(0), 10) + regular(at(80), 10, g0=150),
)

CASES["high_low"] = (
    "Dexcom High/Low as the parser emits them: 401 and 39 with quality 1 (OUT_OF_RANGE). They are "
    "ordinary anchors for re-timing (readings off the grid by 20-40 s, so neighbours get blended "
    "with 401/39); OUT_OF_RANGE warning (4).",
    30, 60,
    [egv(at(0, 20), 300), egv(at(5, 20), 350), egv(at(10, 40), 401, 1), egv(at(15, 20), 401, 1),
     egv(at(20, 20), 380), egv(at(25, 20), 200), egv(at(30, 20), 90), egv(at(35, 40), 39, 1),
     egv(at(40, 20), 39, 1), egv(at(45, 20), 60), egv(at(50, 20), 80), egv(at(55, 20), 95)],
)

CASES["events_nearest"] = (
    "Insulin/carb rows get the sequence of the nearest EGV reading by original_datetime (polars "
    "join_asof strategy 'nearest'). Readings: sequence 1 08:00..08:45, sequence 2 09:30..10:15 "
    "(45-min gap). CARBS 07:57:50 (before every reading) -> seq 1; INS_FAST 09:00 (15 min after "
    "08:45, 30 before 09:30) -> seq 1; CARBS 09:07:30, exactly midway (22:30 either side) -> seq 2 "
    "(the tie goes to the LATER reading); INS_SLOW 09:15 -> seq 2; INS_FAST 10:20 (after the last "
    "reading) -> seq 2. The grid origin of a sequence is its earliest original_datetime over ALL "
    "its rows, events included, rounded to the minute: seq 1 starts at 07:57:50 -> 07:58, so its "
    "readings move to 07:58, 08:03, ... and are re-timed (08:05 -> 08:03, 102 -> 101.2); seq 2 "
    "starts at the 09:07:30 carbs -> 09:08 (09:30 -> 09:28). The window (seq 2, the newest) "
    "therefore runs 09:08..10:18 (events included).",
    30, 120,
    [carbs(at(-2, -10), 20)]
    + regular(at(0), 10)                            # 08:00 .. 08:45
    + [ins_fast(at(60), 4), carbs(at(67, 30), 15), ins_slow(at(75), 10)]
    + regular(at(90), 10, g0=150)                   # 09:30 .. 10:15
    + [ins_fast(at(140), 2)],
)

CASES["event_extends_window"] = (
    "The reference measures durations on ALL rows: 13 readings (08:00..09:00, 60 min) plus an "
    "insulin row at 11:50 attached to the same sequence (nearest reading) make a 230-min sequence. "
    "Truncation to max 180 counts back from the insulin row (11:50 - 3 h = 08:50) and keeps only "
    "the readings 08:50, 08:55, 09:00; the window spans 180 min >= min 120 and is accepted with "
    "L = 3 glucose rows. mark_calibration_periods sees a gap >= 2h45 between consecutive rows "
    "(09:00 -> 11:50) and flags the insulin row SENSOR_CALIBRATION (quality 16|2 = 18) -> "
    "CALIBRATION warning (flags 34).",
    120, 180,
    regular(at(0), 13) + [ins_fast(at(230), 5)],
)

CASES["null_glucose"] = (
    "An EGV_READ row with no glucose value (as Libre LO rows can be) at 08:20: it is not an "
    "anchor, and a gap is filled only when both ends have glucose, so the 10-min gap 08:10 -> 08:20 "
    "is NOT filled (no row at 08:15: the series has a hole) while the 10-min gap 08:35 -> 08:45 is "
    "(08:40 imputed). The null row IS re-timed like every EGV row, so after synchronize_timestamps "
    "it carries the measured series at 08:20 (between 08:10 = 104 and 08:25 = 120: 114.67).",
    30, 60,
    regular(at(0), 3) + [egv(at(20), None)] + regular(at(25), 3, g0=120) + regular(at(45), 4, g0=130),
)


# ======================================================================================
def run_case(name: str, desc: str, min_d: int, max_d: int, rows: list[str]) -> dict[str, bytes]:
    import polars as pl
    from cgm_format import FormatParser, FormatProcessor
    from glurpc import logic
    from glurpc.schemas import FormattedWarnings

    text = (HEADER + "\n" + "\n".join(rows) + "\n").encode("utf-8")
    unified = FormatParser.parse_from_bytes(text)
    files: dict[str, bytes] = {f"{name}.csv": unified.write_csv().encode("utf-8")}

    processed = FormatProcessor.detect_and_assign_sequences(unified)
    processed = FormatProcessor.interpolate_gaps(processed)
    processed = FormatProcessor.synchronize_timestamps(processed)
    files[f"{name}.processed.csv"] = processed.write_csv().encode("utf-8")

    summary: dict = {
        "case": name,
        "description": desc,
        "min_duration": min_d,
        "max_duration": max_d,
        "input_rows": unified.height,
        "processed_rows": processed.height,
        "sequences": processed.filter(pl.col("sequence_id") > 0)["sequence_id"].n_unique(),
        "imputed_rows": processed.filter((pl.col("quality") & 4) != 0).height,
    }
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            window, flags, L = logic.analyse_and_prepare_df(unified, min_d, max_d)
    except Exception as exc:  # noqa: BLE001
        summary["error"] = f"{type(exc).__name__}: {exc}"
        return files | {f"{name}.json": (json.dumps(summary, indent=2) + "\n").encode("utf-8")}

    series = FormatProcessor.to_data_only_df(window, drop_service_columns=False, drop_duplicates=True,
                                             glucose_only=True)
    files[f"{name}.window.csv"] = window.write_csv().encode("utf-8")
    files[f"{name}.series.csv"] = series.write_csv().encode("utf-8")
    first, last = window["datetime"].min(), window["datetime"].max()
    summary.update({
        "sequence_id": window["sequence_id"].unique().to_list(),
        "first": first.strftime("%Y-%m-%dT%H:%M:%S"),
        "last": last.strftime("%Y-%m-%dT%H:%M:%S"),
        "window_duration_minutes": (last - first).total_seconds() / 60.0,
        "window_rows": window.height,
        "rows": L,
        "warning_flags": flags.value,
        "warnings": FormattedWarnings.from_flags(flags).model_dump(),
    })
    return files | {f"{name}.json": (json.dumps(summary, indent=2) + "\n").encode("utf-8")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        from glurpc import logic  # noqa: F401  (slow import: torch, darts)
    logging.disable(logging.CRITICAL)

    drift = []
    expected_names = set()
    for name, (desc, min_d, max_d, rows) in CASES.items():
        assert 10 <= len(rows) <= 60, (name, len(rows))
        files = run_case(name, desc, min_d, max_d, rows)
        for fname, data in files.items():
            expected_names.add(fname)
            path = OUT / fname
            if args.check:
                if not path.exists() or path.read_bytes() != data:
                    drift.append(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        s = json.loads(files[f"{name}.json"])
        print(f"{name}: seqs={s['sequences']} imputed={s['imputed_rows']} "
              + (s["error"] if "error" in s else
                 f"L={s['rows']} {s['first']}..{s['last']} flags={s['warning_flags']}"))
    if OUT.exists():
        for path in OUT.iterdir():
            if path.name not in expected_names and path.name != "README.md":
                drift.append(path)
                if not args.check:
                    path.unlink()
    if args.check:
        for p in drift:
            print(f"DRIFT {p.relative_to(ROOT)}")
        return 1 if drift else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
