#!/usr/bin/env python3
"""Write the synthetic CGM fixtures in tests/data/synthetic/.

The fixtures are committed and frozen: tests and goldens depend only on the committed
bytes. This script records how they were made (layouts taken from the format description
in cgm-format 0.13.0 and from the real exports in tests/data/real/) and rewrites them
byte-identically when run again (fixed seeds, no clock, no network). It needs only the
Python standard library, except unified_processed.csv, which is the reference's own
processed output and needs the reference venv (see tools/README.md); without it that one
fixture is skipped.

    python3 tools/make_synthetic_fixtures.py            # (re)write all fixtures
    python3 tools/make_synthetic_fixtures.py --check    # fail if a fixture would change

No personal data: names are "Example"/"Patient", serial numbers are made up, glucose
curves are generated.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "synthetic"

MMOL = 18.0182


# --------------------------------------------------------------------------------------
# A plausible glucose curve (mg/dL): slow daily drift, meal bumps, sensor noise.
# --------------------------------------------------------------------------------------
def make_curve(start: datetime, meals: list[tuple[datetime, float]], seed: int):
    rng = random.Random(seed)
    noise_cache: dict[int, float] = {}

    def curve(t: datetime) -> float:
        minutes = (t - start).total_seconds() / 60.0
        value = 112.0 + 14.0 * math.sin(2 * math.pi * (minutes / 1440.0) + 0.7)
        for when, amplitude in meals:
            dt = (t - when).total_seconds() / 60.0
            if dt <= 0:
                continue
            rise = 1.0 - math.exp(-dt / 40.0)
            fall = math.exp(-dt / 120.0)
            value += amplitude * rise * fall * 1.5
        key = int(minutes)
        if key not in noise_cache:
            noise_cache[key] = rng.gauss(0.0, 2.5)
        return value + noise_cache[key]

    return curve


def write(path: Path, text: str, *, bom: bool = False, crlf: bool = False) -> bytes:
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    if bom:
        data = b"\xef\xbb\xbf" + data
    return data


# --------------------------------------------------------------------------------------
# Dexcom Clarity EU (mmol/L), G7, with the extra "Sensor" metadata row.
# --------------------------------------------------------------------------------------
DEXCOM_HEADER_14 = [
    "Index", "Timestamp (YYYY-MM-DDThh:mm:ss)", "Event Type", "Event Subtype", "Patient Info",
    "Device Info", "Source Device ID", "Glucose Value (mg/dL)", "Insulin Value (u)",
    "Carb Value (grams)", "Duration (hh:mm:ss)", "Glucose Rate of Change (mg/dL/min)",
    "Transmitter Time (Long Integer)", "Transmitter ID",
]


def dexcom_eu() -> bytes:
    header = [h.replace("mg/dL", "mmol/L") for h in DEXCOM_HEADER_14]
    src = "iOS G7"
    meta = [
        ["", "FirstName", "", "Example", "", "", "", "", "", "", "", "", ""],
        ["", "LastName", "", "Patient", "", "", "", "", "", "", "", "", ""],
        ["", "Device", "", "", "Dexcom G7 Mobile App", src, "", "", "", "", "", "", ""],
        ["", "Sensor", "", "", "", src, "", "", "", "", "", "", "3F7K2M"],
        ["", "Alert", "Fall", "", "", src, "", "", "", "", "-0.17", "", ""],
        ["", "Alert", "High", "", "", src, "13.3", "", "", "", "", "", ""],
        ["", "Alert", "Low", "", "", src, "3.9", "", "", "", "", "", ""],
        ["", "Alert", "Signal Loss", "", "", src, "", "", "", "00:20:00", "", "", ""],
        ["", "Alert", "Rise", "", "", src, "", "", "", "", "0.17", "", ""],
        ["", "Alert", "Urgent Low", "", "", src, "3.1", "", "", "", "", "", ""],
        ["", "Alert", "Urgent Low Soon", "", "", src, "3.1", "", "", "", "", "", ""],
    ]
    start = datetime(2024, 3, 5, 6, 2, 41)
    meals = [
        (datetime(2024, 3, 5, 7, 30), 120.0),
        (datetime(2024, 3, 5, 12, 45), 150.0),
        (datetime(2024, 3, 5, 19, 10), 230.0),
    ]
    curve = make_curve(start, meals, seed=20240305)
    rng = random.Random(7)
    n = 250
    gap = set(range(101, 105))  # 4 missing readings: a 25-minute sensor gap
    egv: list[tuple[datetime, list[str]]] = []
    prev = None
    for i in range(n):
        if i in gap:
            continue
        t = start + timedelta(seconds=300 * i + rng.choice([-1, 0, 0, 0, 1]))
        mg = curve(t)
        # A hypo around reading 60 and a post-dinner spike around reading 164, blended in
        # smoothly; the sensor shows "Low" below 2.2 and "High" above 22.2 mmol/L.
        w_lo = math.exp(-(((i - 60) / 4.0) ** 2))
        w_hi = math.exp(-(((i - 164) / 6.0) ** 2))
        mg = mg * (1 - w_lo) + 36.0 * w_lo
        mg = mg * (1 - w_hi) + 430.0 * w_hi
        mmol = round(mg / MMOL, 1)
        if i == 60:
            text = "Low"
        elif i == 164:
            text = "High"
        else:
            text = f"{min(max(mmol, 2.2), 22.2):.1f}"
        subtype = "High" if text == "High" else "Low" if text == "Low" else ""
        if prev is None or text in ("High", "Low") or prev in ("High", "Low"):
            rate = ""
        else:
            rate = f"{(float(text) - float(prev)) / 5.0:.2f}"
            if rate == "-0.00":
                rate = "0.00"
        prev = text
        tx_time = 861_200 + 300 * i
        egv.append((t, ["EGV", subtype, "", "", src, text, "", "", "", rate, str(tx_time), "3F7K2M"]))

    def ev(ts: str, etype: str, sub: str, glucose="", insulin="", carbs="", dur=""):
        t = datetime.fromisoformat(ts)
        # Event rows are ragged (13 fields), as in real Clarity exports.
        return (t, [etype, sub, "", "", src, glucose, insulin, carbs, dur, "", ""])

    events = [
        ev("2024-03-05T07:25:00", "Insulin", "Fast-Acting", insulin="6.50"),
        ev("2024-03-05T07:30:00", "Carbs", "", carbs="45"),
        ev("2024-03-05T09:41:07", "Calibration", "", glucose="6.8"),
        ev("2024-03-05T12:40:00", "Insulin", "Fast-Acting", insulin="8.00"),
        ev("2024-03-05T12:45:00", "Carbs", "", carbs="60"),
        ev("2024-03-05T15:00:00", "Exercise", "Medium", dur="00:30:00"),
        ev("2024-03-05T16:10:00", "Health", "Stress"),
        ev("2024-03-05T19:05:00", "Insulin", "Fast-Acting", insulin="10.50"),
        ev("2024-03-05T19:10:00", "Carbs", "", carbs="85"),
        ev("2024-03-05T22:00:00", "Insulin", "Long-Acting", insulin="18.00"),
    ]
    rows = sorted(egv + events, key=lambda r: r[0])
    lines = [",".join(header)]
    idx = 1
    for m in meta:
        lines.append(",".join([str(idx)] + m))
        idx += 1
    for t, cells in rows:
        lines.append(",".join([str(idx), t.strftime("%Y-%m-%dT%H:%M:%S")] + cells))
        idx += 1
    return write(OUT, "\n".join(lines) + "\n", bom=True, crlf=True)


# --------------------------------------------------------------------------------------
# Dexcom Clarity US, older 12-column layout, "YYYY-MM-DD H:MM:SS" timestamps.
# --------------------------------------------------------------------------------------
def dexcom_us_12col() -> bytes:
    header = DEXCOM_HEADER_14[:12]
    src = "android G6"
    # A short metadata block (6 rows, 4 fewer than the nominal 10): the reference
    # measures the block instead of assuming its length.
    meta = [
        ["", "FirstName", "", "Example", "", "", "", "", "", ""],
        ["", "LastName", "", "Patient", "", "", "", "", "", ""],
        ["", "Device", "", "", "Dexcom G6 Mobile App", src, "", "", "", ""],
        ["", "Alert", "High", "", "", src, "250", "", "", ""],
        ["", "Alert", "Low", "", "", src, "70", "", "", ""],
        ["", "Alert", "Urgent Low", "", "", src, "55", "", "", ""],
    ]
    start = datetime(2019, 5, 1, 0, 1, 47)
    meals = [
        (datetime(2019, 5, 1, 7, 15), 140.0),
        (datetime(2019, 5, 1, 12, 30), 260.0),
    ]
    curve = make_curve(start, meals, seed=20190501)
    rng = random.Random(11)
    rows: list[tuple[datetime, list[str]]] = []
    for i in range(220):
        t = start + timedelta(seconds=300 * i + rng.choice([0, 0, 0, 1]))
        w_hi = math.exp(-(((i - 163) / 7.0) ** 2))  # a spike that tops out above 400
        mg = int(round(curve(t) * (1 - w_hi) + 420.0 * w_hi))
        text, sub = str(min(mg, 400)), ""
        if i == 163:
            text, sub = "High", "High"
        rate = "" if i == 0 else str(rng.choice([-2, -1, -1, 0, 0, 0, 1, 1, 2]))
        rows.append((t, ["EGV", sub, "", "", src, text, "", "", "", rate]))

    def ev(ts: str, etype: str, sub: str, glucose="", insulin="", carbs="", dur=""):
        return (datetime.fromisoformat(ts), [etype, sub, "", "", src, glucose, insulin, carbs, dur, ""])

    rows += [
        ev("2019-05-01 07:10:00", "Insulin", "Fast-Acting", insulin="5.00"),
        ev("2019-05-01 07:15:00", "Carbs", "", carbs="40"),
        ev("2019-05-01 09:30:00", "Exercise", "Light", dur="00:20:00"),
        ev("2019-05-01 12:25:00", "Insulin", "", insulin="7.50"),  # no subtype -> fast
        ev("2019-05-01 12:30:00", "Carbs", "", carbs="75"),
        ev("2019-05-01 13:47:12", "Calibration", "", glucose="212"),
        ev("2019-05-01 14:00:00", "Activity", "Heavy", dur="01:05:30"),
        ev("2019-05-01 17:20:00", "Insulin", "Long-Acting", insulin="16.00"),
    ]
    rows.sort(key=lambda r: r[0])
    lines = [",".join(header)]
    idx = 1
    for m in meta:
        lines.append(",".join([str(idx)] + m))
        idx += 1
    for t, cells in rows:
        # Hour without a leading zero, as older Clarity exports write it: 2019-05-01 0:01:47
        ts = f"{t:%Y-%m-%d} {t.hour}:{t:%M:%S}"
        lines.append(",".join([str(idx), ts] + cells))
        idx += 1
    return write(OUT, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------
# LibreView (US, mg/dL)
# --------------------------------------------------------------------------------------
LIBRE_HEADER_MGDL = [
    "Device", "Serial Number", "Device Timestamp", "Record Type", "Historic Glucose mg/dL",
    "Scan Glucose mg/dL", "Non-numeric Rapid-Acting Insulin", "Rapid-Acting Insulin (units)",
    "Non-numeric Food", "Carbohydrates (grams)", "Carbohydrates (servings)",
    "Non-numeric Long-Acting Insulin", "Long-Acting Insulin Value (units)", "Notes",
    "Strip Glucose mg/dL", "Ketone mmol/L", "Meal Insulin (units)", "Correction Insulin (units)",
    "User Change Insulin (units)",
]
L = {name: i for i, name in enumerate(LIBRE_HEADER_MGDL)}


def libre_row(device: str, serial: str, ts: str, rtype: int, **cells: str) -> str:
    row = [""] * len(LIBRE_HEADER_MGDL)
    row[L["Device"]] = device
    row[L["Serial Number"]] = serial
    row[L["Device Timestamp"]] = ts
    row[L["Record Type"]] = str(rtype)
    names = {
        "historic": "Historic Glucose mg/dL", "scan": "Scan Glucose mg/dL",
        "nn_rapid": "Non-numeric Rapid-Acting Insulin", "rapid": "Rapid-Acting Insulin (units)",
        "nn_food": "Non-numeric Food", "carbs": "Carbohydrates (grams)",
        "servings": "Carbohydrates (servings)", "nn_long": "Non-numeric Long-Acting Insulin",
        "long": "Long-Acting Insulin Value (units)", "notes": "Notes", "strip": "Strip Glucose mg/dL",
        "ketone": "Ketone mmol/L",
    }
    for key, value in cells.items():
        if "," in value or '"' in value:
            value = '"' + value.replace('"', '""') + '"'
        row[L[names[key]]] = value
    return ",".join(row)


def historic_series(start: datetime, count: int, curve, rng: random.Random):
    """Libre historic readings: every 15 min on whole minutes, drifting a minute now and then."""
    out = []
    t = start
    for _ in range(count):
        out.append((t, int(round(curve(t)))))
        t += timedelta(minutes=16 if rng.random() < 0.12 else 15)
    return out


def us_24h(t: datetime) -> str:
    return t.strftime("%m-%d-%Y %H:%M")


def us_ampm(t: datetime) -> str:
    return t.strftime("%m-%d-%Y %I:%M %p")  # zero-padded 12-hour clock: 12:07 AM, 01:22 PM


def libre_us_mgdl() -> bytes:
    dev, serial = "FreeStyle Libre 2", "MXAB1234567"
    start = datetime(2024, 5, 30, 21, 4)  # day 30 > 12: month-first is the only reading
    meals = [
        (datetime(2024, 5, 31, 8, 0), 130.0), (datetime(2024, 5, 31, 13, 0), 110.0),
        (datetime(2024, 5, 31, 19, 30), 160.0), (datetime(2024, 6, 1, 8, 30), 120.0),
        (datetime(2024, 6, 1, 18, 45), 150.0), (datetime(2024, 6, 2, 7, 50), 140.0),
    ]
    curve = make_curve(start, meals, seed=530)
    rng = random.Random(530)
    hist = historic_series(start, 230, curve, rng)  # ~2.4 days, into June (day <= 12)
    entries: list[tuple[datetime, int, str]] = []
    for k, (t, v) in enumerate(hist):
        cells = {"historic": "HI" if k == 150 else str(v)}
        entries.append((t, 0, libre_row(dev, serial, us_24h(t), 0, **cells)))
    # Scans (type 1): one at the same minute as a historic reading, one duplicated row, one LO.
    scan_times = [hist[10][0], hist[40][0] + timedelta(minutes=7), hist[95][0] + timedelta(minutes=3),
                  hist[180][0] + timedelta(minutes=9)]
    for k, t in enumerate(scan_times):
        v = int(round(curve(t))) + 2
        entries.append((t, 1, libre_row(dev, serial, us_24h(t), 1, scan=str(v))))
        if k == 1:  # LibreLink sometimes logs the same scan twice
            entries.append((t, 1, libre_row(dev, serial, us_24h(t), 1, scan=str(v))))
    t_lo = hist[120][0] + timedelta(minutes=4)
    entries.append((t_lo, 1, libre_row(dev, serial, us_24h(t_lo), 1, scan="LO")))
    # Strip (type 2)
    for t, v in [(datetime(2024, 5, 31, 6, 58), "104"), (datetime(2024, 6, 1, 22, 11), "131")]:
        entries.append((t, 2, libre_row(dev, serial, us_24h(t), 2, strip=v)))
    # Insulin (type 4): rapid only, long only, both on one row, and a row with neither.
    ins = [
        (datetime(2024, 5, 31, 7, 55), {"rapid": "6"}),
        (datetime(2024, 5, 31, 12, 58), {"rapid": "4.5"}),
        (datetime(2024, 5, 31, 22, 0), {"long": "20"}),
        (datetime(2024, 6, 1, 8, 27), {"rapid": "5.5", "long": "2"}),
        (datetime(2024, 6, 1, 18, 40), {"nn_rapid": "1"}),
        (datetime(2024, 6, 1, 22, 5), {"long": "20", "nn_long": "1"}),
    ]
    for t, cells in ins:
        entries.append((t, 4, libre_row(dev, serial, us_24h(t), 4, **cells)))
    # Food (type 5): grams; servings only; non-numeric only.
    food = [
        (datetime(2024, 5, 31, 8, 0), {"carbs": "45"}),
        (datetime(2024, 5, 31, 19, 30), {"carbs": "70", "servings": "5"}),
        (datetime(2024, 6, 1, 8, 30), {"servings": "3"}),
        (datetime(2024, 6, 1, 18, 45), {"nn_food": "1"}),
    ]
    for t, cells in food:
        entries.append((t, 5, libre_row(dev, serial, us_24h(t), 5, **cells)))
    # Notes / exercise / ketones (type 6): dropped by the reference.
    notes = [
        (datetime(2024, 5, 31, 17, 2), {"notes": "Walk, 20 min"}),
        (datetime(2024, 6, 1, 9, 15), {"notes": "Felt \"low\" before breakfast"}),
        (datetime(2024, 6, 1, 23, 30), {"ketone": "0.2"}),
    ]
    for t, cells in notes:
        entries.append((t, 6, libre_row(dev, serial, us_24h(t), 6, **cells)))
    # LibreView groups rows loosely by time; keep a stable time order with the record
    # type as tie-breaker.
    entries.sort(key=lambda e: (e[0], e[1]))
    lines = [
        "Glucose Data,Generated on,06-03-2024 14:02 UTC,Generated by,Example Patient",
        ",".join(LIBRE_HEADER_MGDL),
    ] + [e[2] for e in entries]
    return write(OUT, "\n".join(lines) + "\n", crlf=True)


def libre_pro_patient_report() -> bytes:
    dev, serial = "FreeStyle Libre Pro", "JGMK0001234"
    start = datetime(2023, 6, 13, 22, 1)
    meals = [
        (datetime(2023, 6, 14, 7, 40), 110.0), (datetime(2023, 6, 14, 12, 20), 130.0),
        (datetime(2023, 6, 14, 18, 50), 150.0), (datetime(2023, 6, 15, 7, 30), 120.0),
    ]
    curve = make_curve(start, meals, seed=613)
    rng = random.Random(613)
    # Start at 22:01 and step 15 min exactly, so readings fall on 12:xx AM and 12:xx PM.
    rows = []
    t = start
    for k in range(200):
        rows.append((t, 0, libre_row(dev, serial, us_ampm(t), 0, historic=str(int(round(curve(t)))))))
        t += timedelta(minutes=15)
    for t, note in [(datetime(2023, 6, 14, 12, 5), "Lunch"), (datetime(2023, 6, 15, 0, 10), "Bedtime")]:
        rows.append((t, 6, libre_row(dev, serial, us_ampm(t), 6, notes=note)))
    rows.sort(key=lambda e: (e[0], e[1]))
    lines = [
        "Patient report,Generated on,06-16-2023 09:41 AM UTC,Generated by,Example Clinic",
        "xxxx,xxxx",
        ",".join(LIBRE_HEADER_MGDL),
    ] + [r[2] for r in rows]
    return write(OUT, "\n".join(lines) + "\n", crlf=True)


def libre_us_ampm() -> bytes:
    dev, serial = "FreeStyle Libre 2", "MXCD7654321"
    # First date 03-12 reads either way; 03-13 later in the file settles month-first.
    start = datetime(2024, 3, 12, 20, 47)
    meals = [
        (datetime(2024, 3, 13, 7, 45), 120.0), (datetime(2024, 3, 13, 12, 15), 140.0),
        (datetime(2024, 3, 13, 19, 0), 150.0),
    ]
    curve = make_curve(start, meals, seed=312)
    rows = []
    t = start
    for k in range(210):  # historic readings every 15 minutes
        rows.append((t, 0, libre_row(dev, serial, us_ampm(t), 0, historic=str(int(round(curve(t)))))))
        t += timedelta(minutes=15)
    for t in [datetime(2024, 3, 13, 0, 9), datetime(2024, 3, 13, 12, 33), datetime(2024, 3, 14, 12, 0)]:
        rows.append((t, 1, libre_row(dev, serial, us_ampm(t), 1, scan=str(int(round(curve(t))) + 1))))
    for t, cells in [(datetime(2024, 3, 13, 7, 40), {"rapid": "5"}),
                     (datetime(2024, 3, 13, 12, 10), {"rapid": "6.5"}),
                     (datetime(2024, 3, 13, 21, 55), {"long": "22"})]:
        rows.append((t, 4, libre_row(dev, serial, us_ampm(t), 4, **cells)))
    for t, g in [(datetime(2024, 3, 13, 7, 45), "50"), (datetime(2024, 3, 13, 12, 15), "65")]:
        rows.append((t, 5, libre_row(dev, serial, us_ampm(t), 5, carbs=g)))
    rows.sort(key=lambda e: (e[0], e[1]))
    lines = [
        "Glucose Data,Generated on,03-15-2024 09:15 AM UTC,Generated by,Example Patient",
        ",".join(LIBRE_HEADER_MGDL),
    ] + [r[2] for r in rows]
    return write(OUT, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------
# Nightscout entries.json with UTC offsets in dateString (xDrip+-style uploads).
# --------------------------------------------------------------------------------------
def nightscout_entries_offset() -> bytes:
    tz = timezone(timedelta(hours=1))
    start = datetime(2026, 3, 31, 10, 5, 0, tzinfo=tz)
    curve = make_curve(start.replace(tzinfo=None), [(datetime(2026, 3, 31, 12, 30), 120.0)], seed=331)
    records = []

    def direction(delta: float) -> str:
        per_min = delta / 5.0
        if per_min > 2:
            return "SingleUp"
        if per_min > 1:
            return "FortyFiveUp"
        if per_min < -2:
            return "SingleDown"
        if per_min < -1:
            return "FortyFiveDown"
        return "Flat"

    for i in range(48):
        millis = 0 if i % 3 == 2 else (i * 137) % 1000
        t = start + timedelta(minutes=5 * i, seconds=(i * 7) % 3, milliseconds=millis)
        epoch_ms = int(t.timestamp() * 1000)
        if i % 3 == 2:
            ds = t.strftime("%Y-%m-%dT%H:%M:%S") + "+01:00"  # RFC 3339 offset, no millis
        else:
            ds = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}" + t.strftime("%z")
        sgv = int(round(curve(t.replace(tzinfo=None))))
        delta = float(sgv - records[-1]["sgv"]) if records else 0.0
        rec = {
            "_id": f"66a{i:05d}c0ffee{i * 7919 % 100000:05d}",
            "device": "xDrip-DexcomG6",
            "date": epoch_ms,
            "dateString": ds,
            "sysTime": ds,
            "sgv": sgv,
            "delta": delta,
            "direction": direction(delta),
            "noise": 1,
            "filtered": sgv * 1000 + 120,
            "unfiltered": sgv * 1000 - 80,
            "rssi": 100,
            "utcOffset": 60,
            "type": "sgv",
        }
        if i == 20:
            del rec["type"]  # some uploaders omit "type": the reference keeps such records
        records.append(rec)
    # A meter reading: type "mbg", must be dropped (no sgv).
    t = start + timedelta(minutes=62, seconds=15)
    ds = t.strftime("%Y-%m-%dT%H:%M:%S.000%z")
    records.append({
        "_id": "66a99999c0ffee00001", "device": "xDrip-DexcomG6", "date": int(t.timestamp() * 1000),
        "dateString": ds, "sysTime": ds, "mbg": 118, "utcOffset": 60, "type": "mbg",
    })
    records.sort(key=lambda r: r["date"], reverse=True)  # the API serves newest first
    return (json.dumps(records, indent=2) + "\n").encode("utf-8")


# --------------------------------------------------------------------------------------
# Unified CSV (the reference's own format), as a user might re-upload it.
# --------------------------------------------------------------------------------------
def unified_minimal() -> bytes:
    """Hand-written unified CSV: a column subset in another order, no original_* columns,
    datetimes without fractional seconds, rows out of order, an unknown extra column."""
    rows = [
        ("2024-01-02T08:10:00", "EGV_READ", "120.5", "0", "", "", "", "sensor"),
        ("2024-01-02T08:00:00", "EGV_READ", "115.31648000000001", "0", "", "", "", ""),
        ("2024-01-02T08:05:00", "INS_FAST", "", "0", "4.0", "", "", "bolus"),
        ("2024-01-02T08:05:00", "EGV_READ", "118", "0", "", "", "", ""),
        ("2024-01-02T08:07:00", "CARBS_IN", "", "0", "", "30", "", "breakfast"),
        ("2024-01-02T08:15:00", "EGV_READ", "126.1274", "0", "", "", "", ""),
        ("2024-01-02T08:20:00", "EGV_READ", "139", "0", "", "", "", ""),
        ("2024-01-02T08:25:00", "EGV_READ", "401", "1", "", "", "", "High"),
        ("2024-01-02T08:30:00", "EGV_READ", "", "0", "", "", "", "gap"),
        ("2024-01-02T08:30:00", "XRCS_LTE", "", "0", "", "", "1200", "walk"),
        ("2024-01-02T08:35:00", "EGV_READ", "151.2", "0", "", "", "", ""),
        ("2024-01-02T08:40:00", "INS_SLOW", "", "0", "", "", "", "basal"),
        ("2024-01-02T07:55:00", "EGV_READ", "112", "0", "", "", "", "first"),
    ]
    lines = ["datetime,event_type,glucose,quality,insulin_fast,carbs,exercise,note"]
    for r in rows:
        lines.append(",".join(r))
    # the INS_SLOW row carries its dose in insulin_slow, which this header lacks: keep it
    # null on purpose (a missing column becomes a typed null column)
    return write(OUT, "\n".join(lines) + "\n")


def unified_processed() -> bytes | None:
    """The reference's own output after sequence detection, gap interpolation and grid
    synchronisation of dexcom_eu_mmol.csv (first ten hours): non-zero sequence ids and
    quality bits, datetime != original_datetime. Needs cgm-format 0.13.0; skipped without it."""
    try:
        import polars as pl
        from cgm_format import FormatParser, FormatProcessor
    except ImportError:
        return None
    df = FormatParser.parse_from_bytes(dexcom_eu())
    df = FormatProcessor.detect_and_assign_sequences(df)
    df = FormatProcessor.interpolate_gaps(df)
    df = FormatProcessor.synchronize_timestamps(df)
    df = df.filter(pl.col("original_datetime") < pl.datetime(2024, 3, 5, 16, 0))
    return df.write_csv().encode("utf-8")


FIXTURES = {
    "dexcom_eu_mmol.csv": dexcom_eu,
    "dexcom_us_12col.csv": dexcom_us_12col,
    "libre_us_mgdl.csv": libre_us_mgdl,
    "libre_pro_patient_report.csv": libre_pro_patient_report,
    "libre_us_ampm.csv": libre_us_ampm,
    "nightscout_entries_offset.json": nightscout_entries_offset,
    "unified_minimal.csv": unified_minimal,
    "unified_processed.csv": unified_processed,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, make in FIXTURES.items():
        data = make()
        if data is None:
            print(f"skipped (needs cgm-format 0.13.0): {name}")
            continue
        path = OUT / name
        if path.exists() and path.read_bytes() == data:
            continue
        changed.append(name)
        if not args.check:
            path.write_bytes(data)
    for name in changed:
        print(("would change: " if args.check else "wrote: ") + name)
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
