#!/usr/bin/env python3
"""PyTorch side of tools/gpu-check: glucobench 0.4.1's Gluformer at gluRPC's default size
(tools/bench_torch_forward.py's CONFIG) with weights from torch.manual_seed(SEED), saved as a
.pth for `glurpc model convert` (so both sides run the same weights), then timed on DEVICE:

  eval_batch32     eval mode, no_grad, 32 windows (one forward pass)
  mc_110x10        one upload's 110 windows x 10 MC samples: dropout on, BatchNorm on running
                   statistics (as glurpc runs MC), no_grad, in passes of 32 windows x 10 rows
                   (gluRPC's BATCH_SIZE), inputs made on the host and moved each pass

Each timing synchronises the device before the clock stops. Prints one JSON object.

glucobench's model.py imports optuna, darts and tensorboard for its training helpers: when
they are missing, empty stand-ins are put in sys.modules (the network classes never use them).
glucobench itself may come as its wheel on sys.path (--glucobench WHEEL; pure Python).

Usage: torch_forward.py --device cuda:0 --pth OUT.pth [--seed 0] [--runs 10] [--mc-runs 5]
                        [--warmup 2] [--glucobench WHL]
"""

import argparse
import atexit
import importlib
import json
import shutil
import statistics
import sys
import time
import tempfile
import types
import zipfile
from pathlib import Path


def stub_training_imports() -> None:
    for name in ("optuna", "darts"):
        try:
            importlib.import_module(name)
        except ImportError:
            mod = types.ModuleType(name)
            if name == "optuna":
                mod.trial = types.SimpleNamespace(Trial=object)
                mod.exceptions = types.SimpleNamespace(TrialPruned=Exception)
            sys.modules[name] = mod
    try:
        importlib.import_module("torch.utils.tensorboard")
    except ImportError:
        tb = types.ModuleType("torch.utils.tensorboard")
        tb.SummaryWriter = object
        sys.modules["torch.utils.tensorboard"] = tb
    dd = types.ModuleType("glucobench.utils.darts_dataset")
    dd.SamplingDatasetDual = object
    sys.modules["glucobench.utils.darts_dataset"] = dd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--pth", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--mc-runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--windows", type=int, default=110)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--glucobench", type=Path, help="glucosedao_glucobench-0.4.1 wheel")
    args = ap.parse_args()
    if args.glucobench:
        # glucobench is a namespace package (no __init__.py), which zipimport cannot
        # import from the wheel itself: unpack it.
        unpacked = Path(tempfile.mkdtemp(prefix="glucobench-"))
        atexit.register(shutil.rmtree, unpacked, True)
        zipfile.ZipFile(args.glucobench).extractall(unpacked)
        sys.path.insert(0, str(unpacked))
    import torch

    stub_training_imports()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_torch_forward import CONFIG, inputs  # noqa: E402  (after the stand-ins)
    from glucobench.lib.gluformer.model import Gluformer  # noqa: E402

    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = Gluformer(**CONFIG)
    torch.save(model.state_dict(), args.pth)
    model = model.to(dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(fn, runs: int) -> dict:
        for _ in range(args.warmup):
            fn()
        sync()
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t)
        return {"median_s": statistics.median(ts), "min_s": min(ts), "runs": runs}

    out = {
        "torch": torch.__version__,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "seed": args.seed,
    }
    model.eval()
    x32 = [t.to(dev) for t in inputs(32)]
    with torch.no_grad():
        out["eval_batch32"] = timed(lambda: model(*x32), args.runs)

    # MC: dropout on, BatchNorm on running statistics.
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.train()
    host = inputs(args.windows)
    rows_per_window = args.samples

    def mc() -> None:
        with torch.no_grad():
            for start in range(0, args.windows, 32):
                part = [t[start:start + 32].repeat_interleave(rows_per_window, dim=0).to(dev) for t in host]
                pred, logvar = model(*part)
                pred.cpu(), logvar.cpu()

    out["mc_110x10"] = timed(mc, args.mc_runs)
    out["mc_110x10"].update(windows=args.windows, samples=args.samples)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
