#!/usr/bin/env python3
"""Forecast goldens: the reference's code path from a CGM export to an eval-mode
forecast in mg/dL, with the small fixture model (tests/data/model/small).

  unified + window + dataset   exactly as tools/make_pipeline_goldens.py (cgm-format 0.13.0,
                               glurpc 0.6.3 logic.analyse_and_prepare_df(df, 540, 1080) and
                               logic.create_dataset_from_df)
  model inputs                 captured from glucobench's real Gluformer.predict (see
                               make_pipeline_goldens.model_inputs)
  network                      glucobench 0.4.1's Gluformer with the small fixture weights, in
                               eval mode (dropout off, BatchNorm running statistics), no_grad:
                               glurpc's `--deterministic`. The service itself only runs MC
                               dropout in train mode, which no golden can pin.
  mg/dL                        glurpc logic.calculate_plot_data's inverse: (x - min_) / scale_
                               in float64 with the target scaler

Writes tests/data/golden_forecast/<stem>.json with windows 0, -1 and -(N-1) of the full window.

    /tmp/ref/venv-pipe/bin/python tools/make_forecast_goldens.py
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import make_pipeline_goldens as mpg  # noqa: E402

STEMS = ["dexcom_us_14d", "libre_eu_1y"]
OUT = ROOT / "tests" / "data" / "golden_forecast"


def small_model():
    import torch
    from safetensors.torch import load_file
    from glucobench.lib.gluformer.model import Gluformer

    cfg = json.loads((ROOT / "tests/data/model/small/config.json").read_text())
    model = Gluformer(**cfg)
    model.load_state_dict(load_file(str(ROOT / "tests/data/model/small/model.safetensors")), strict=True)
    model.eval()
    return model, cfg


def main() -> int:
    import numpy as np
    import torch
    from glurpc import logic

    mpg.load_reference()
    torch.set_num_threads(1)
    model, cfg = small_model()
    OUT.mkdir(parents=True, exist_ok=True)
    for stem in STEMS:
        summary = json.loads((mpg.DATA / "golden" / f"{stem}.json").read_text())
        unified, src, _call, handle = mpg.parse_fixture(summary)
        with contextlib.redirect_stdout(io.StringIO()):
            window, flags, L = logic.analyse_and_prepare_df(unified, 540, 1080)
            result = logic.create_dataset_from_df(window, flags)
        dataset, st = result["dataset"], result["scaler_target"]
        mc = result["model_config"]
        n = len(dataset)
        smin, sscale = float(st.min_[0]), float(st.scale_[0])
        wins = {}
        for k in sorted({0, -1, -(n - 1)}, reverse=True):
            i = k + n - 1
            cap = mpg.model_inputs(dataset, mc, i)
            with torch.no_grad():
                pred, logvar = model(cap["x_id"], cap["x_enc"], cap["x_mark_enc"], cap["x_dec"], cap["x_mark_dec"])
            scaled = pred.numpy()[0, :, 0]
            mgdl = (scaled.astype(np.float64) - smin) / sscale
            wins[str(k)] = {
                "dataset_index": i,
                "pred_scaled": [float(x) for x in scaled],
                "logvar": float(logvar.numpy().reshape(-1)[0]),
                "forecast_mgdl": [float(x) for x in mgdl],
            }
        doc = {
            "source": src,
            "handle": handle,
            "model": "tests/data/model/small (eval mode)",
            "window": "full (540-1080 min)",
            "samples": n,
            "target_scaler": {"min": smin, "scale": sscale},
            "windows": wins,
        }
        (OUT / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(stem, "N =", n, "window 0:", [round(x, 2) for x in wins["0"]["forecast_mgdl"][:4]], "...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
