#!/usr/bin/env python3
"""PyTorch side of benches/model.rs: glucobench 0.4.1's Gluformer at gluRPC's
default size with random weights, on the same work and thread count.

  eval_batch32        eval mode, no_grad, 32 windows
  mc_reference_32x10  train mode (dropout on, BatchNorm on batch statistics),
                      320 rows = 32 windows x 10, as Gluformer.predict() runs it
                      (with autograd on, as predict() does, and with no_grad)

Usage: python tools/bench_torch_forward.py [--threads 2] [--runs 10]
Prints one JSON object: median and min seconds per case.
"""

import argparse
import json
import statistics
import time

import torch

from glucobench.lib.gluformer.model import Gluformer

CONFIG = dict(d_model=512, n_heads=10, d_fcn=1024, num_enc_layers=2, num_dec_layers=2,
              len_seq=96, label_len=32, len_pred=12, num_dynamic_features=6,
              num_static_features=1, r_drop=0.2, activ="gelu", distil=True)


def inputs(rows, seed=42):
    g = torch.Generator().manual_seed(seed)
    past = torch.rand(rows, 96, 1, generator=g)
    hist = torch.rand(rows, 96, 6, generator=g)
    fut = torch.rand(rows, 12, 6, generator=g)
    x_id = torch.zeros(rows, 1)
    x_dec = torch.cat([past[:, -32:], torch.zeros(rows, 12, 1)], dim=1)
    x_mark_dec = torch.cat([hist[:, -32:], fut], dim=1)
    return x_id, past, hist, x_dec, x_mark_dec


def timed(fn, runs, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "runs": runs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--eval-only", action="store_true", help="only the eval batch of 32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    model = Gluformer(**CONFIG)
    out = {"torch": torch.__version__, "threads": args.threads}

    model.eval()
    x32 = inputs(32)
    with torch.no_grad():
        out["eval_batch32"] = timed(lambda: model(*x32), args.runs)

    if args.eval_only:
        print(json.dumps(out, indent=2))
        return
    model.train()
    x320 = inputs(32).__class__(t.repeat_interleave(10, dim=0) for t in x32)
    out["mc_reference_32x10_autograd"] = timed(lambda: model(*x320), max(3, args.runs // 3))
    with torch.no_grad():
        out["mc_reference_32x10"] = timed(lambda: model(*x320), max(3, args.runs // 3))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
