#!/usr/bin/env python3
"""Write pipeline goldens: what gluRPC 0.6.3 feeds its model for every fixture.

The reference code path, run unmodified from the installed packages (pins in
tools/requirements-pipeline.txt):

  unified frame   cgm_format 0.13.0 FormatParser (parse_from_bytes, or parse_nightscout for
                  Nightscout JSON), exactly as tools/make_format_goldens.py does; the content
                  handle is checked against tests/data/golden/<stem>.json
  window          glurpc.logic.analyse_and_prepare_df(df, 540, max): detect_and_assign_sequences
                  -> interpolate_gaps -> synchronize_timestamps -> prepare_for_inference(540, max)
                  -> to_data_only_df(False, True, True)
  dataset         glurpc.logic.create_dataset_from_df(window, flags): glucobench 0.4.1 interpolate +
                  encode, darts TimeSeries, glucobench ScalerCustom (target and covariates),
                  SamplingDatasetInferenceDual(96, 12)
  model inputs    glucobench Gluformer.predict (the real method, with batch_size 1 and
                  num_samples 1) on a Gluformer whose forward() only records its arguments, so
                  the tensors are exactly the ones the network receives
  warnings        glurpc.schemas.FormattedWarnings.from_flags(flags)

Two windows per fixture, as the service uses them (glurpc/core.py):
  full   POST /process_unified (and the quick-plot prefetch): min 540, max MAXIMUM_WANTED_DURATION=1080
  quick  POST /quick_plot: parse_and_schedule(maximum_wanted_duration=MINIMUM_DURATION_MINUTES), so
         min 540, max 540

Writes, for every tests/data/golden/<stem>.json fixture:
  tests/data/golden_pipeline/<stem>.json            see the "schema" block inside each file
  tests/data/golden_pipeline/<stem>.frames/
      processed.csv.gz     after synchronize_timestamps, DataFrame.write_csv() (skipped when large)
      window_full.csv.gz   prepare_for_inference output of the full window (after
                           mark_time_duplicates and mark_calibration_periods)
      series_full.csv.gz   to_data_only_df(window, drop_service_columns=False,
                           drop_duplicates=True, glucose_only=True) of the full window
All gzip is deterministic (mtime 0, no name). Idempotent; no network.

    /tmp/ref/venv-pipe/bin/python tools/make_pipeline_goldens.py           # write
    /tmp/ref/venv-pipe/bin/python tools/make_pipeline_goldens.py --check   # compare only
    /tmp/ref/venv-pipe/bin/python tools/make_pipeline_goldens.py dexcom_us_14d   # some stems
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU only, deterministic
warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)  # glurpc logs every step; keep the output readable

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
GOLDEN = DATA / "golden"
OUT = DATA / "golden_pipeline"

EXPECTED = {
    "cgm-format": "0.13.0",
    "glurpc": "0.6.3",
    "glucosedao-glucobench": "0.4.1",
    "darts": "0.29.0",
}

# (name, minimum_duration_minutes, maximum_wanted_duration) as the service calls them.
WINDOWS = (("full", 540, 1080), ("quick", 540, 540))

# processed.csv.gz above this many bytes (gzipped) is not written (Libre 1 y, Medtronic 86 d).
PROCESSED_MAX_BYTES = 300_000

SCHEMA_DOC = {
    "about": "gluRPC 0.6.3 model inputs for this fixture, produced by tools/make_pipeline_goldens.py "
             "with the reference's own code (cgm-format 0.13.0, glurpc 0.6.3 logic, glucobench 0.4.1, "
             "darts 0.29.0). Floats marked f32 are float32 values written as the shortest decimal that "
             "round-trips to the same float32: parse them as f32 to get the exact bits.",
    "fixture": "stem of tests/data/golden/<stem>.json",
    "input": "file the unified frame was parsed from (the normalised copy where the reference rejects the original)",
    "call": "the cgm-format parser call",
    "handle": "sha256 of the unified CSV (equal to the format golden's handle)",
    "unified_rows": "rows of the parsed unified frame",
    "processed": "after detect_and_assign_sequences -> interpolate_gaps -> synchronize_timestamps: "
                 "rows, sequences (distinct sequence_id > 0 = EGV sequences), imputed_rows (IMPUTATION bit), "
                 "sequences_by_recency (first 12 sequence ids ordered by max(datetime) desc, with max and the "
                 "all-row duration in minutes; prepare_for_inference tries them in this order)",
    "full / quick": "one window each. full = POST /process_unified (min 540, max 1080); quick = POST /quick_plot "
                    "(min 540, max 540). Either {error, service_error, ...} or the fields below",
    "error": "'<exception class>: <message>' raised by the reference (analyse_and_prepare_df wraps "
             "cgm-format errors in ValueError('Data quality issue: ...'))",
    "service_error": "the text the service puts in the response's 'error' field for this failure",
    "min_duration / max_duration": "the two arguments given to analyse_and_prepare_df",
    "sequence_id": "sequence chosen by prepare_for_inference",
    "sequence_rank": "its position in processed.sequences_by_recency order (0 = newest; > 0 means the newest was too short)",
    "first / last": "min / max of datetime over ALL rows of the prepared window (events included), "
                    "ISO YYYY-MM-DDTHH:MM:SS",
    "window_duration_minutes": "last - first over all rows (what prepare_for_inference compares with min)",
    "series_first / series_last / series_duration_minutes": "the same over the glucose-only de-duplicated series",
    "window_rows": "rows of the prepared window frame (all event types)",
    "window_event_counts": "event_type counts in the prepared window",
    "rows": "L = rows of to_data_only_df(window, False, True, True) (glucose only, one row per datetime)",
    "samples": "N = len(SamplingDatasetInferenceDual) (always L - 107 here; checked)",
    "warning_flags": "ProcessingWarning int: TOO_SHORT 1, CALIBRATION 2, OUT_OF_RANGE 4, IMPUTATION 8, "
                     "TIME_DUPLICATES 16, SYNCHRONIZATION 32, QUALITY 64",
    "warnings": "glurpc.schemas.FormattedWarnings.from_flags(flags).model_dump(): booleans + messages in "
                "fixed order (SYNCHRONIZATION has no field and no message)",
    "scaler": "per-request glucobench ScalerCustom = darts Scaler(sklearn MinMaxScaler((0,1))) fitted on this "
              "window's series. Per feature: scale = 1/(data_max - data_min), with a range < 10*eps(f32) "
              "replaced by 1; min = -data_min*scale; all float32. x_scaled = x*scale + min (numpy float32: "
              "multiply rounded, then add rounded; no FMA). Inverse: x = (x_scaled - min)/scale. target.* has "
              "one feature (gl, mg/dL as float32); covariates.* has six in `names` order",
    "series": "the whole scaled dataset series: time (ISO, from the darts time index), target (L values, f32, "
              "scaled) and gl (L values, f32, mg/dL before scaling); covariates are in the sample windows",
    "windows": "keyed by the user index k (0 = last window, -1 = one step earlier, ..., -(N-1) = first); "
               "only k in {0, -1, -(N-1)}",
    "windows[k].dataset_index": "k + (N - 1), the index given to dataset[...]",
    "windows[k].input_times": "96 ISO times of the encoder points (series[s : s+96], s = dataset_index)",
    "windows[k].output_times": "12 ISO times of the forecast points (series[s+96 : s+108])",
    "windows[k].encoder_target": "x_enc: dataset[i][0] (96x1 f32), written flat (96)",
    "windows[k].encoder_covariates": "x_mark_enc: dataset[i][1] (96x6 f32), scaled covariates at input_times",
    "windows[k].future_covariates": "dataset[i][2] (12x6 f32), scaled covariates at output_times",
    "windows[k].static": "dataset[i][3] (1x1 f32), flat: the label-encoded sequence id of the single series",
    "windows[k].decoder_target": "x_dec as Gluformer.predict builds it: encoder_target[-32:] followed by 12 zeros "
                                 "(44, f32; label_len = 96 // 3 = 32)",
    "windows[k].decoder_covariates": "x_mark_dec as predict builds it: encoder_covariates[-32:] followed by "
                                     "future_covariates (44x6 f32)",
    "windows[k].true_future": "scaled target at output_times (12, f32), the ground truth of the backtest",
    "windows[k].model_call": "forward(x_id, x_enc, x_mark_enc, x_dec, x_mark_dec) argument shapes and dtypes "
                             "recorded from the real predict() call (batch 1, num_samples 1)",
    "frames": "files in <stem>.frames/ (see tools/make_pipeline_goldens.py)",
}

COV_NAMES = ["time_day", "time_month", "time_year", "time_hour", "time_minute", "time_second"]


# ======================================================================================
# Reference imports (slow: torch, darts)
# ======================================================================================
def load_reference():
    from importlib.metadata import version

    for pkg, want in EXPECTED.items():
        have = version(pkg)
        if have != want:
            raise SystemExit(f"{pkg} {have} installed, {want} required (tools/requirements-pipeline.txt)")
    with contextlib.redirect_stdout(io.StringIO()):
        import numpy as np  # noqa: F401
        import polars as pl  # noqa: F401
        import torch  # noqa: F401
        from cgm_format import FormatParser, FormatProcessor  # noqa: F401
        from glurpc import logic  # noqa: F401
        from glurpc.schemas import FormattedWarnings  # noqa: F401
        from glurpc.data_classes import DartsDataset  # noqa: F401
        from glucobench.lib.gluformer.model import Gluformer  # noqa: F401
    logging.disable(logging.CRITICAL)


def versions() -> dict:
    from importlib.metadata import version

    pkgs = ["cgm-format", "glurpc", "glucosedao-glucobench", "darts", "scikit-learn", "numpy", "pandas",
            "polars", "torch"]
    return {p: version(p) for p in pkgs}


# ======================================================================================
# Helpers
# ======================================================================================
def f32(x) -> float:
    """A float32 as the float whose repr is the shortest decimal round-tripping to that float32."""
    import numpy as np

    return float(repr(np.float32(x)).replace("np.float32(", "").rstrip(")"))


def f32_list(a) -> list:
    import numpy as np

    arr = np.asarray(a)
    assert arr.dtype == np.float32, arr.dtype
    if arr.ndim == 1:
        return [f32(v) for v in arr]
    return [f32_list(row) for row in arr]


def iso(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def describe_error(exc: BaseException) -> str:
    message = str(exc).replace("\r\n", " ").replace("\n", " ").replace("\r", " ").strip()
    return f"{type(exc).__name__}: {message}"


def dumps(obj: Any, indent: int = 0) -> str:
    """JSON with dicts indented and lists of scalars (or of short lists) kept on one line."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {dumps(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in obj) + "]"
        if all(isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v) for v in obj):
            rows = [pad + "  " + dumps(v) for v in obj]
            return "[\n" + ",\n".join(rows) + "\n" + pad + "]"
        items = [pad + "  " + dumps(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def read_payload(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def parse_fixture(summary: dict):
    from cgm_format import FormatParser

    src = summary["normalised_input"] or summary["file"]
    payloads = [read_payload(DATA / src)]
    if summary["treatments_file"]:
        payloads.append(read_payload(DATA / summary["treatments_file"]))
    call = summary["call"]
    if call.startswith("FormatParser.parse_nightscout"):
        df = FormatParser.parse_nightscout(*payloads)
    elif call == "FormatParser.parse_from_bytes(data)":
        df = FormatParser.parse_from_bytes(payloads[0])
    else:
        raise SystemExit(f"unknown call {call!r}")
    handle = hashlib.sha256(df.write_csv().encode("utf-8")).hexdigest()
    if handle != summary["handle"]:
        raise SystemExit(f"{src}: handle {handle} differs from the format golden {summary['handle']}")
    return df, src, call, handle


# ======================================================================================
# The pipeline
# ======================================================================================
def processed_frame(df):
    """detect -> interpolate -> sync, the same calls analyse_and_prepare_df makes."""
    from cgm_format import FormatProcessor

    out = FormatProcessor.detect_and_assign_sequences(df)
    out = FormatProcessor.interpolate_gaps(out)
    out = FormatProcessor.synchronize_timestamps(out)
    return out


def recency_order(processed):
    """Sequences ordered as prepare_for_inference tries them (max datetime, newest first)."""
    import polars as pl

    agg = (processed.group_by("sequence_id")
           .agg(pl.col("datetime").max().alias("max"), pl.col("datetime").min().alias("min"))
           .sort(["max", "sequence_id"], descending=[True, False]))
    return agg


class _Recorder(Exception):
    pass


def model_inputs(dataset, model_config, index: int) -> dict:
    """Run the real Gluformer.predict on one dataset item and capture forward()'s arguments."""
    import torch
    from glucobench.lib.gluformer.model import Gluformer

    captured = {}
    model = Gluformer(**model_config.model_dump())

    def forward(x_id, x_enc, x_mark_enc, x_dec, x_mark_dec):
        captured.update(x_id=x_id.clone(), x_enc=x_enc.clone(), x_mark_enc=x_mark_enc.clone(),
                        x_dec=x_dec.clone(), x_mark_dec=x_mark_dec.clone())
        b = x_enc.shape[0]
        return torch.zeros(b, model_config.len_pred, 1), torch.zeros(b, 1, 1)

    model.forward = forward  # nn.Module.__call__ dispatches to the instance attribute
    with contextlib.redirect_stdout(io.StringIO()):
        model.predict([dataset[index]], batch_size=1, num_samples=1, device="cpu")
    return captured


def check_scaling(ts, cov, gl, st, sc) -> None:
    """The documented formulas reproduce the reference's scaled values bit for bit."""
    import numpy as np

    one, zero = np.float32(1), np.float32(0)
    eps10 = np.float32(10) * np.finfo(np.float32).eps
    raw_cov = np.array([[t.day, t.month, t.year, t.hour, t.minute, t.second] for t in ts.time_index],
                       dtype=np.float32)
    for raw, scaler, scaled in ((gl[:, None], st, ts.values()), (raw_cov, sc, cov.values())):
        dmin, dmax = raw.min(axis=0), raw.max(axis=0)
        rng = dmax - dmin
        rng = np.where(rng < eps10, one, rng).astype(np.float32)
        scale = (one / rng).astype(np.float32)
        mn = (zero - dmin * scale).astype(np.float32)
        assert np.array_equal(scale, scaler.scale_), (scale, scaler.scale_)
        assert np.array_equal(mn, scaler.min_), (mn, scaler.min_)
        mine = (raw * scale).astype(np.float32) + mn
        assert mine.dtype == np.float32 and np.array_equal(mine, scaled), np.abs(mine - scaled).max()


def build_window(unified, name: str, min_d: int, max_d: int, processed, order) -> tuple[dict, Optional[tuple]]:
    import numpy as np
    import polars as pl
    from cgm_format import FormatProcessor
    from glurpc import logic
    from glurpc.data_classes import DartsDataset
    from glurpc.schemas import FormattedWarnings

    res: dict = {"min_duration": min_d, "max_duration": max_d}
    sequences = processed.filter(pl.col("sequence_id") > 0)["sequence_id"].n_unique()
    res["sequences"] = sequences
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            window, flags, L = logic.analyse_and_prepare_df(unified, min_d, max_d)
    except Exception as exc:  # noqa: BLE001 - the reference raises ValueError here
        res["error"] = describe_error(exc)
        res["service_error"] = str(exc)
        return res, None

    series = FormatProcessor.to_data_only_df(window, drop_service_columns=False, drop_duplicates=True,
                                             glucose_only=True)
    assert series.height == L
    seq_ids = window["sequence_id"].unique().to_list()
    assert len(seq_ids) == 1, seq_ids
    seq_id = seq_ids[0]
    rank = order["sequence_id"].to_list().index(seq_id)
    counts = window.group_by("event_type").len().sort("event_type")
    first, last = window["datetime"].min(), window["datetime"].max()
    sfirst, slast = series["datetime"].min(), series["datetime"].max()
    res.update({
        "sequence_id": seq_id,
        "sequence_rank": rank,
        "first": iso(first),
        "last": iso(last),
        "window_duration_minutes": (last - first).total_seconds() / 60.0,
        "series_first": iso(sfirst),
        "series_last": iso(slast),
        "series_duration_minutes": (slast - sfirst).total_seconds() / 60.0,
        "window_rows": window.height,
        "window_event_counts": {r["event_type"]: r["len"] for r in counts.to_dicts()},
        "rows": L,
    })
    expected = logic.calculate_dataset_length_from_input(L, 96, 12)
    res["warning_flags"] = flags.value
    res["warnings"] = FormattedWarnings.from_flags(flags).model_dump()
    if expected <= 0:
        # glurpc/core.py parse_and_schedule answers before any dataset is built.
        res["samples"] = 0
        res["error"] = "ValueError: " + f"Calculated expected length {expected} is non-positive. Duration too short?"
        res["service_error"] = f"Calculated expected length {expected} is non-positive. Duration too short?"
        return res, (window, series)

    with contextlib.redirect_stdout(io.StringIO()):
        result = logic.create_dataset_from_df(window, flags)
    if not result["success"]:
        res["samples"] = 0
        res["error"] = "DatasetCreationError: " + result["error"]
        res["service_error"] = result["error"]
        return res, (window, series)

    dataset = result["dataset"]
    st, sc = result["scaler_target"], result["scaler_covs"]
    mc = result["model_config"]
    N = len(dataset)
    assert N == L - 107, (N, L)
    assert len(dataset.target_series) == 1
    res["samples"] = N
    res["model_config"] = mc.model_dump()

    ts = dataset.target_series[0]
    cov = dataset.covariates[0]
    assert list(cov.components) == COV_NAMES, list(cov.components)
    times = [t.isoformat() for t in ts.time_index]
    assert len(times) == L
    gl = series.sort("datetime")["glucose"].to_numpy().astype(np.float32)
    fitted_t = st.scaler._fitted_params[0]
    fitted_c = sc.scaler._fitted_params[0]
    res["scaler"] = {
        "formula": "x_scaled = x*scale + min (float32); x = (x_scaled - min)/scale",
        "target": {
            "names": ["gl"],
            "min": f32_list(st.min_), "scale": f32_list(st.scale_),
            "data_min": f32_list(fitted_t.data_min_), "data_max": f32_list(fitted_t.data_max_),
        },
        "covariates": {
            "names": COV_NAMES,
            "min": f32_list(sc.min_), "scale": f32_list(sc.scale_),
            "data_min": f32_list(fitted_c.data_min_), "data_max": f32_list(fitted_c.data_max_),
        },
    }
    res["series"] = {
        "time": times,
        "gl": f32_list(gl),
        "target": f32_list(ts.values()[:, 0]),
    }
    # The unscaled series the scaler saw is the de-duplicated glucose (checked).
    assert np.array_equal(fitted_t.data_min_, np.array([gl.min()], dtype=np.float32))
    check_scaling(ts, cov, gl, st, sc)

    dto = DartsDataset.from_original(dataset)
    label_len = mc.label_len
    wins = {}
    for k in sorted({0, -1, -(N - 1)}, reverse=True):
        if not -(N - 1) <= k <= 0:
            continue
        i = k + (N - 1)
        past, hist, fut, static = dataset[i]
        true_past, true_future = dto.get_sample_data(i)
        in_times, out_times = dto.get_sample_timestamps(i)
        assert np.array_equal(true_past, past)
        cap = model_inputs(dataset, mc, i)
        x_enc = cap["x_enc"].numpy()[0]
        x_mark_enc = cap["x_mark_enc"].numpy()[0]
        x_dec = cap["x_dec"].numpy()[0]
        x_mark_dec = cap["x_mark_dec"].numpy()[0]
        x_id = cap["x_id"].numpy()[0]
        assert np.array_equal(x_enc, past) and np.array_equal(x_mark_enc, hist)
        assert np.array_equal(x_dec[:label_len], past[-label_len:]) and not x_dec[label_len:].any()
        assert np.array_equal(x_mark_dec, np.concatenate([hist[-label_len:], fut]))
        wins[str(k)] = {
            "dataset_index": i,
            "input_times": in_times,
            "output_times": out_times,
            "encoder_target": f32_list(x_enc[:, 0]),
            "encoder_covariates": f32_list(x_mark_enc),
            "future_covariates": f32_list(fut),
            "static": f32_list(x_id.reshape(-1)),
            "decoder_target": f32_list(x_dec[:, 0]),
            "decoder_covariates": f32_list(x_mark_dec),
            "true_future": f32_list(np.asarray(true_future)[:, 0]),
            "model_call": {
                name: {"shape": list(cap[name].shape), "dtype": str(cap[name].dtype).replace("torch.", "")}
                for name in ("x_id", "x_enc", "x_mark_enc", "x_dec", "x_mark_dec")
            },
        }
    res["windows"] = wins
    return res, (window, series)


def build(stem: str) -> tuple[dict, dict[str, bytes]]:
    import polars as pl

    summary = json.loads((GOLDEN / f"{stem}.json").read_text())
    unified, src, call, handle = parse_fixture(summary)
    with contextlib.redirect_stdout(io.StringIO()):
        processed = processed_frame(unified)
    order = recency_order(processed)
    top = []
    for row in order.head(12).to_dicts():
        top.append({"sequence_id": row["sequence_id"], "last": iso(row["max"]),
                    "duration_minutes": (row["max"] - row["min"]).total_seconds() / 60.0})
    out: dict = {
        "schema": SCHEMA_DOC,
        "fixture": stem,
        "reference": versions(),
        "input": src,
        "call": call,
        "handle": handle,
        "unified_rows": unified.height,
        "processed": {
            "rows": processed.height,
            "sequences": processed.filter(pl.col("sequence_id") > 0)["sequence_id"].n_unique(),
            "imputed_rows": processed.filter((pl.col("quality") & 4) != 0).height,
            "sequences_by_recency": top,
        },
    }
    frames: dict[str, bytes] = {}
    for name, min_d, max_d in WINDOWS:
        res, frs = build_window(unified, name, min_d, max_d, processed, order)
        out[name] = res
        if name == "full" and frs is not None:
            frames["window_full.csv.gz"] = gzip_bytes(frs[0].write_csv().encode("utf-8"))
            frames["series_full.csv.gz"] = gzip_bytes(frs[1].write_csv().encode("utf-8"))
    proc = gzip_bytes(processed.write_csv().encode("utf-8"))
    if len(proc) <= PROCESSED_MAX_BYTES:
        frames["processed.csv.gz"] = proc
    out["frames"] = sorted(frames)
    return out, frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    ap.add_argument("stems", nargs="*", help="only these fixtures (default: every tests/data/golden/*.json)")
    args = ap.parse_args()

    load_reference()
    stems = args.stems or sorted(p.stem for p in GOLDEN.glob("*.json"))
    drift = []
    for stem in stems:
        out, frames = build(stem)
        files = {OUT / f"{stem}.json": (dumps(out) + "\n").encode("utf-8")}
        for name, data in frames.items():
            files[OUT / f"{stem}.frames" / name] = data
        for path, data in files.items():
            if args.check:
                if not path.exists() or path.read_bytes() != data:
                    drift.append(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        line = []
        for w in ("full", "quick"):
            r = out[w]
            if "error" in r:
                line.append(f"{w}: {r['error'][:90]}")
            else:
                line.append(f"{w}: L={r['rows']} N={r['samples']} {r['first']}..{r['last']} flags={r['warning_flags']}")
        print(f"{stem}: seqs={out['processed']['sequences']}  " + "  |  ".join(line), flush=True)
    if args.check:
        for p in drift:
            print(f"DRIFT {p.relative_to(ROOT)}")
        return 1 if drift else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
