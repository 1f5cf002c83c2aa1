#!/usr/bin/env python3
"""Regenerates the evaluation tables of model/MODEL_CARD.md from `glurpc evaluate --json --per-person`.

The tables go between the markers `<!-- evaluation:begin -->` and
`<!-- evaluation:end -->` of the card; everything else in it is left alone.
A second, optional evaluation (`--before FILE`, the previous model on the same
test set) adds a before/after table. `--people data/training/people.csv`
(written by tools/prepare_training_data.py) says which people have diabetes.

Standard library only.

Usage: python3 tools/model_card_tables.py EVAL.json [--before OLD.json] [--people people.csv] [--card model/MODEL_CARD.md]
"""

import argparse
import csv
import json
import re
import sys
from pathlib import Path

BEGIN, END = "<!-- evaluation:begin -->", "<!-- evaluation:end -->"


def f1(x):
    return "-" if x is None else f"{x:.1f}"


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def pooled(doc):
    return doc.get("pooled", doc)


def summary_rows(ev):
    rows = []
    for name, label in [("model", "**model** (median, calibrated bands)"), ("persistence", "persistence"), ("linear", "linear (last 30 min)")]:
        s = ev[name]
        ab60 = None
        if s.get("clarke_60"):
            ab60 = s["clarke_60"]["A"] + s["clarke_60"]["B"]
        rows.append(
            f"| {label} | {f1(s['rmse_30'])} | {f1(s['rmse_60'])} | {f1(s['mae_30'])} | {f1(s['mae_60'])} "
            f"| {f1(s.get('glucobench_rmse'))} | {f1(s.get('glucobench_mae'))} | {f1(s.get('mard_60'))} "
            f"| {pct(ab60)} | {pct(s.get('coverage_50'))} | {pct(s.get('coverage_90'))} "
            f"| {'-' if s.get('calibration_error') is None else format(s['calibration_error'], '.3f')} |"
        )
    head = (
        "| forecaster | RMSE 30 | RMSE 60 | MAE 30 | MAE 60 | GlucoBench RMSE | GlucoBench MAE | MARD 60 (%) "
        "| Clarke A+B 60 | 50% band | 90% band | calibration error |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    return head + "\n" + "\n".join(rows)


def per_step_table(ev):
    m, p = ev["model"], ev["persistence"]
    lines = [
        "| minutes | RMSE model | RMSE persistence | MAE model | 50% band | 90% band | 90% band width (mg/dL) |",
        "|---|---|---|---|---|---|---|",
    ]
    for a, b in zip(m["per_step"], p["per_step"]):
        lines.append(
            f"| {a['minutes']} | {f1(a['rmse'])} | {f1(b['rmse'])} | {f1(a['mae'])} | {pct(a['coverage_50'])} "
            f"| {pct(a['coverage_90'])} | {f1(a['width_90'])} |"
        )
    return "\n".join(lines)


def clarke_table(ev):
    lines = ["| forecaster | horizon | A | B | C | D | E |", "|---|---|---|---|---|---|---|"]
    for name in ["model", "persistence", "linear"]:
        for h in ["30", "60"]:
            z = ev[name].get(f"clarke_{h}")
            if z:
                lines.append(f"| {name} | {h} min | " + " | ".join(pct(z[k]) for k in "ABCDE") + " |")
    return "\n".join(lines)


def people_status(path):
    if not path or not Path(path).is_file():
        return {}
    with open(path, newline="") as f:
        return {r["person"]: r for r in csv.DictReader(f)}


def per_person_table(doc, status):
    lines = [
        "| person | diabetes | windows | RMSE 60 model | RMSE 60 persistence | vs persistence | 90% band | Clarke A+B 60 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in doc.get("per_person", []):
        m, q = p["model"], p["persistence"]
        gain = 100 * (1 - m["rmse_60"] / q["rmse_60"]) if q["rmse_60"] else None
        ab = m["clarke_60"]["A"] + m["clarke_60"]["B"] if m.get("clarke_60") else None
        st = status.get(p["person"], {}).get("diabetes", "?")
        lines.append(
            f"| {p['person']} | {st} | {m['windows']} | {f1(m['rmse_60'])} | {f1(q['rmse_60'])} "
            f"| {'-' if gain is None else f'{gain:+.1f}%'} | {pct(m.get('coverage_90'))} | {pct(ab)} |"
        )
    return "\n".join(lines)


def before_after(before, after):
    b, a = pooled(before)["model"], pooled(after)["model"]
    keys = [("rmse_30", "RMSE 30", f1), ("rmse_60", "RMSE 60", f1), ("mae_30", "MAE 30", f1), ("mae_60", "MAE 60", f1),
            ("glucobench_rmse", "GlucoBench RMSE", f1), ("coverage_50", "50% band", pct), ("coverage_90", "90% band", pct),
            ("calibration_error", "calibration error", lambda x: "-" if x is None else f"{x:.3f}")]
    lines = ["| model | " + " | ".join(k[1] for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, s in [("before (previous default model)", b), ("after (this model)", a)]:
        lines.append(f"| {label} | " + " | ".join(fmt(s.get(k)) for k, _, fmt in keys) + " |")
    lines.append("")
    lines.append("| minutes | 90% band before | 90% band after | width before | width after |")
    lines.append("|---|---|---|---|---|")
    for x, y in zip(b.get("per_step", []), a.get("per_step", [])):
        lines.append(f"| {y['minutes']} | {pct(x['coverage_90'])} | {pct(y['coverage_90'])} | {f1(x['width_90'])} | {f1(y['width_90'])} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evaluation")
    ap.add_argument("--before")
    ap.add_argument("--people")
    ap.add_argument("--card", default="model/MODEL_CARD.md")
    args = ap.parse_args()
    doc = json.loads(Path(args.evaluation).read_text())
    ev = pooled(doc)
    parts = [
        f"Test set, pooled over {ev['model']['windows']} windows (`glurpc evaluate --json --per-person`), mg/dL:",
        "",
        summary_rows(ev),
        "",
        "Per step (the model's median and bands; persistence for comparison):",
        "",
        per_step_table(ev),
        "",
        "Clarke error grid (share of points per zone):",
        "",
        clarke_table(ev),
    ]
    if doc.get("per_person"):
        parts += ["", "Per person:", "", per_person_table(doc, people_status(args.people))]
    if args.before:
        parts += ["", "Before and after, same test windows (model rows):", "", before_after(json.loads(Path(args.before).read_text()), doc)]
    block = BEGIN + "\n" + "\n".join(parts) + "\n" + END
    card = Path(args.card)
    text = card.read_text()
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        sys.exit(f"{card}: add the markers {BEGIN} and {END} where the tables go")
    card.write_text(text)
    print(f"wrote the tables into {card}")


if __name__ == "__main__":
    main()
