"""Rebuild the shipped condition-map CSVs from the reference lists.

Kept beside the data so anyone can see (and redo) how ``ccw_codes.csv``,
``ccw_conditions.csv`` and ``cci_chronic.csv`` were derived: codes are
normalised (upper case, no dot) and the AHRQ list is trimmed to chronic=1.
Run: ``python -m ccm_core.rules.build_condition_maps FOLDER`` where FOLDER holds the upstream files named in
``ccm_core/rules/SOURCES.md`` ("Chronic-condition code lists").
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).parent


def normalize(code: str) -> str:
    return code.strip().strip("'\"").replace(".", "").upper()


def build(ref: Path) -> None:
    with (
        open(ref / "ccw_2022_30cond_CC_Desc.csv", newline="") as fh,
        open(HERE / "ccw_conditions.csv", "w", newline="") as out,
    ):
        w = csv.writer(out)
        w.writerow(["condition", "description", "reference_months"])
        for row in csv.DictReader(fh):
            w.writerow([row["Condition"], row["Condition_long"], row["Ref_months"]])
    seen = set()
    with (
        open(ref / "ccw_2022_30cond_CC_Codes.csv", newline="") as fh,
        open(HERE / "ccw_codes.csv", "w", newline="") as out,
    ):
        w = csv.writer(out)
        w.writerow(["condition", "icd10"])
        for row in csv.DictReader(fh):
            key = (row["Condition"], normalize(row["DxCode"]))
            if key not in seen:
                seen.add(key)
                w.writerow(key)
    with (
        open(ref / "ahrq_cci_icd10cm_2019_1.csv", newline="") as fh,
        open(HERE / "cci_chronic.csv", "w", newline="") as out,
    ):
        w = csv.writer(out)
        w.writerow(["icd10", "body_system"])
        reader = csv.reader(fh, quotechar='"')
        next(reader)
        for row in reader:
            code, _desc, chronic, body = (c.strip().strip("'") for c in row[:4])
            if chronic == "1":
                w.writerow([normalize(code), body])


if __name__ == "__main__":  # pragma: no cover - a maintenance script
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ccm_core.rules.build_condition_maps FOLDER  (see ccm_core/rules/SOURCES.md)")
    build(Path(sys.argv[1]))
