#!/usr/bin/env python3
"""PyTorch parity fixtures for the candle Gluformer (tests/model_parity.rs).

Builds glucobench 0.4.1's own Gluformer class with fixed-seed random weights for a
small config (d_model 32, n_heads 3 -> head width 10 and inner width 30 != 32,
d_fcn 64, 3 encoder layers -> two distilling ConvLayers 97 -> 49 -> 25, 2 decoder
layers) and writes, under tests/data/model/:

  small/model.safetensors, small/config.json   the weights (every state-dict key)
  small/weights.pth                            the same state dict via torch.save
  inputs.safetensors      a batch of 8 windows in gluRPC's predict() layout
  eval.safetensors        pred / logvar in eval mode
  trainbn.safetensors     pred / logvar with BatchNorm on batch statistics, dropout off
  intermediates.safetensors  per-block activations (forward hooks), eval mode, batch 2
  mc_masks.safetensors    2 windows x 3 repeats in train mode with every dropout mask
                          recorded in call order (u8 keep flags; module names in metadata)
  mc_stats.safetensors    mean and std over 4000 MC-dropout passes per window with
                          BatchNorm on running statistics (our default mode)

Usage (the venv from tools/requirements-pipeline.txt):
  python tools/make_model_fixtures.py [--out tests/data/model]
"""

import argparse
import json
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

from glucobench.lib.gluformer.model import Gluformer

CONFIG = dict(
    d_model=32,
    n_heads=3,
    d_fcn=64,
    num_enc_layers=3,
    num_dec_layers=2,
    len_seq=96,
    label_len=32,
    len_pred=12,
    num_dynamic_features=6,
    num_static_features=1,
    r_drop=0.2,
    activ="gelu",
    distil=True,
)


def build_model(seed: int) -> Gluformer:
    torch.manual_seed(seed)
    model = Gluformer(**CONFIG)
    # Exercise the running-stat and affine paths: randomise BatchNorm stats and
    # LayerNorm weights, which the default init leaves at 0/1.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
            if isinstance(mod, nn.LayerNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return model


def make_inputs(batch: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    cfg = CONFIG
    past = torch.rand(batch, cfg["len_seq"], 1, generator=g)
    hist = torch.rand(batch, cfg["len_seq"], cfg["num_dynamic_features"], generator=g)
    fut = torch.rand(batch, cfg["len_pred"], cfg["num_dynamic_features"], generator=g)
    x_id = torch.randint(0, 3, (batch, 1), generator=g).float()
    ll = cfg["label_len"]
    x_dec = torch.cat([past[:, -ll:], torch.zeros(batch, cfg["len_pred"], 1)], dim=1)
    x_mark_dec = torch.cat([hist[:, -ll:], fut], dim=1)
    return dict(x_id=x_id, x_enc=past, x_mark_enc=hist, x_dec=x_dec, x_mark_dec=x_mark_dec)


def call(model, inp):
    return model(inp["x_id"], inp["x_enc"], inp["x_mark_enc"], inp["x_dec"], inp["x_mark_dec"])


def set_dropout(model, p: float):
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = p


def c(t):
    return t.detach().contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/model")
    args = ap.parse_args()
    out = args.out
    os.makedirs(os.path.join(out, "small"), exist_ok=True)
    torch.set_num_threads(1)

    model = build_model(1234)
    sd = {k: c(v) for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out, "small", "model.safetensors"))
    torch.save(model.state_dict(), os.path.join(out, "small", "weights.pth"))
    with open(os.path.join(out, "small", "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")

    inp = make_inputs(8, 42)
    save_file({k: c(v) for k, v in inp.items()}, os.path.join(out, "inputs.safetensors"))

    # Eval mode: dropout off, BatchNorm on running statistics.
    model.eval()
    with torch.no_grad():
        pred, logvar = call(model, inp)
    save_file({"pred": c(pred), "logvar": c(logvar)}, os.path.join(out, "eval.safetensors"))

    # Train-mode BatchNorm (batch statistics) with dropout off. Work on a copy so the
    # running statistics of the saved model are not overwritten.
    m2 = build_model(1234)
    m2.load_state_dict(model.state_dict())
    m2.train()
    set_dropout(m2, 0.0)
    with torch.no_grad():
        pred, logvar = call(m2, inp)
    save_file({"pred": c(pred), "logvar": c(logvar)}, os.path.join(out, "trainbn.safetensors"))

    # Per-block intermediates, eval mode, batch 2.
    inter = {}
    names = ["enc_embedding", "var", "encoder", "dec_embedding", "decoder", "projection"]
    names += [f"encoder.enc_layers.{i}" for i in range(CONFIG["num_enc_layers"])]
    names += [f"encoder.conv_layers.{i}" for i in range(CONFIG["num_enc_layers"] - 1)]
    names += [f"decoder.layers.{i}" for i in range(CONFIG["num_dec_layers"])]
    mods = dict(model.named_modules())
    hooks = []
    for n in names:
        def hook(_m, _i, o, n=n):
            inter[n] = c(o)
        hooks.append(mods[n].register_forward_hook(hook))
    small = {k: v[:2] for k, v in inp.items()}
    with torch.no_grad():
        call(model, small)
    for h in hooks:
        h.remove()
    save_file(inter, os.path.join(out, "intermediates.safetensors"))

    # Injected MC-dropout masks: train mode (BatchNorm on batch statistics, as gluRPC
    # runs it), 2 windows each repeated 3 times, every dropout call recorded in order.
    m3 = build_model(1234)
    m3.load_state_dict(model.state_dict())
    m3.train()
    masks, mask_names = [], []
    for name, mod in m3.named_modules():
        if isinstance(mod, nn.Dropout):
            def fwd(x, name=name, p=mod.p):
                keep = (torch.rand(x.shape) >= p)
                masks.append(keep.to(torch.uint8))
                mask_names.append(name)
                return x * keep.to(x.dtype) / (1.0 - p)
            mod.forward = fwd
    torch.manual_seed(7)
    rep = {k: v[:2].repeat_interleave(3, dim=0) for k, v in inp.items()}
    with torch.no_grad():
        pred, logvar = call(m3, rep)
    tensors = {"pred": c(pred), "logvar": c(logvar)}
    for i, mk in enumerate(masks):
        tensors[f"mask_{i:02}"] = c(mk)
    save_file(tensors, os.path.join(out, "mc_masks.safetensors"),
              metadata={"names": json.dumps(mask_names)})

    # MC statistics: dropout on, BatchNorm on running statistics (glurpc's default
    # mode), 4000 passes per window for 4 windows.
    m4 = build_model(1234)
    m4.load_state_dict(model.state_dict())
    m4.eval()
    for mod in m4.modules():
        if isinstance(mod, nn.Dropout):
            mod.train()
    torch.manual_seed(99)
    samples = 4000
    four = {k: v[:4].repeat_interleave(samples, dim=0) for k, v in inp.items()}
    with torch.no_grad():
        pred, logvar = call(m4, four)
    pred = pred.reshape(4, samples, CONFIG["len_pred"])
    logvar = logvar.reshape(4, samples)
    save_file({
        "samples": torch.tensor([samples], dtype=torch.int64),
        "pred_mean": c(pred.mean(1)),
        "pred_std": c(pred.std(1)),
        "logvar_mean": c(logvar.mean(1)),
        "logvar_std": c(logvar.std(1)),
    }, os.path.join(out, "mc_stats.safetensors"))
    print("wrote fixtures to", out)


if __name__ == "__main__":
    main()
