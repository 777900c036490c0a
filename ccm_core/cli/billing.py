"""``python -m ccm_core kpis`` and ``python -m ccm_core billing``: the engine's numbers for scripts.

A biller runs ``billing`` at month end to get the ready-to-bill list; both
commands read the same functions the pages use, so the numbers match.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from ccm_core.cli import add_db_argument
from ccm_core.engine import read
from ccm_core.engine.filters import Filters
from ccm_core.io.spreadsheet import write_csv_records
from ccm_core.kpis import program as kpis
from ccm_core.security.access_log import log_cli_output
from ccm_core.storage.db import format_month, has_schema, make_engine, month_bounds, parse_month

BILLING_COLUMNS = [
    "patient_id",
    "mrn",
    "service_month",
    "billing_status",
    "hold_reasons",
    "failed_prerequisites",
    "clinic_id",
    "billing_practitioner_id",
    "care_manager_id",
    "payer",
    "logged_minutes",
    "counted_minutes",
    "practitioner_minutes",
    "excluded_non_clinical",
    "excluded_inpatient",
    "excluded_pre_consent",
    "excluded_other_program",
    "threshold_date",
    "supported_track",
    "supported_codes",
    "billed_codes",
    "expected_amount",
    "billed_charge",
    "paid_amount",
    "not_billed",
    "under_billed",
    "over_billed",
    "duplicate_ccm",
    "ccm_with_pcm_same_practitioner",
    "ccm_with_apcm_same_practitioner",
    "addon_without_base",
    "units_over_cap",
    "ccm_tracks_mixed",
    "findings",
    "complex_note",
    "fee_status",
]


def _engine(url: str | None):
    eng = make_engine(url)
    if not has_schema(eng):
        raise ValueError(
            f"No CCM database at {eng.url.render_as_string(hide_password=True)}; run `python -m ccm_core init-db` first"
        )
    return eng


def _jsonable(v):
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    if v != v:  # NaN
        return None
    return v


def _kpi_rows(results: dict) -> list[dict]:
    rows = []
    for key, r in results.items():
        extra = {k: _jsonable(v) for k, v in r.extra.items() if not hasattr(v, "to_dict") and not isinstance(v, dict)}
        extra.update(
            {k: {kk: _jsonable(vv) for kk, vv in v.items()} for k, v in r.extra.items() if isinstance(v, dict)}
        )
        rows.append(
            {
                "key": key,
                "name": r.definition.name,
                "unit": r.definition.unit,
                "value": _jsonable(r.value),
                "numerator": _jsonable(r.numerator),
                "denominator": _jsonable(r.denominator),
                "extra": extra,
            }
        )
    return rows


def _fmt(value, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "rate":
        return f"{value * 100:.1f}%"
    if unit == "dollars":
        return f"${value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def cmd_kpis(args) -> int:
    month = parse_month(args.month)
    f = Filters.for_month(month)
    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else month_bounds(month)[1]
    eng = _engine(args.db)
    with eng.connect() as conn:
        results = kpis.headline(conn, f, as_of)
    rows = _kpi_rows(results)
    if args.format == "json":
        json.dump({"month": format_month(month), "as_of": as_of.isoformat(), "kpis": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"CCM KPIs for {format_month(month)} (as of {as_of.isoformat()})")
        for r in rows:
            if "by" in r["extra"]:
                r["name"] += f" (by {r['extra']['by']})"
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            detail = ""
            if r["numerator"] is not None and r["denominator"] is not None and r["unit"] == "rate":
                unit = "dollars" if r["extra"].get("by") == "dollars" else "count"
                detail = f"  ({_fmt(r['numerator'], unit)} / {_fmt(r['denominator'], unit)})"
            if r["key"] == "revenue":
                e = r["extra"]
                detail = (
                    f"  expected {_fmt(e['expected'], 'dollars')}, billed {_fmt(e['billed'], 'dollars')}, "
                    f"paid {_fmt(e['paid'], 'dollars')}"
                )
                print(f"  {r['name']:<{width}}{detail}")
                continue
            if r["key"] == "minutes_per_enrolled":
                detail = f"  (median {_fmt(r['extra'].get('median'), 'minutes')})"
            print(f"  {r['name']:<{width}}  {_fmt(r['value'], r['unit'])}{detail}")
    return 0


def cmd_billing(args) -> int:
    month = parse_month(args.month)
    eng = _engine(args.db)
    with eng.connect() as conn:
        df = read.billing_status(conn, Filters.for_month(month))
    if args.ready_only:
        df = df[df["billing_status"] == "ready"]
    elif args.holds:
        df = df[df["billing_status"] == "hold"]
    cols = [c for c in BILLING_COLUMNS if c in df.columns]
    df = df[cols] if not df.empty else df.reindex(columns=cols)
    records = [{c: _jsonable(v) for c, v in rec.items()} for rec in df.to_dict("records")]
    # Patient-level output: the access-log row is written before any of it is printed.
    log_cli_output(
        eng,
        user=args.user,
        command="billing",
        detail=f"{format_month(month)}, {len(df)} patient-months, {args.format}",
        patient_count=int(df["patient_id"].nunique()) if not df.empty else 0,
    )
    if args.format == "json":
        json.dump({"month": format_month(month), "patient_months": records}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_csv_records(records, cols, sys.stdout)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "kpis",
        help="print the Overview KPIs for a month",
        description="Print the headline KPIs for one month (same functions as the Overview).",
    )
    add_db_argument(p)
    p.add_argument("--month", required=True, help="reporting month, YYYY-MM")
    p.add_argument("--as-of", default=None, help="date for the pacing forecast (default: last day of the month)")
    p.add_argument("--format", choices=("json", "table"), default="table")
    p.set_defaults(func=cmd_kpis)

    b = subparsers.add_parser(
        "billing",
        help="the ready-to-bill list for a month",
        description="Each patient-month: billing status (ready, hold, short, billed) with "
        "the hold reasons and their fixes, MRN, counted minutes, supported codes "
        "and units, billed codes and units, expected payment and findings.",
    )
    add_db_argument(b)
    b.add_argument("--month", required=True, help="service month, YYYY-MM")
    b.add_argument("--format", choices=("json", "csv"), default="csv")
    which = b.add_mutually_exclusive_group()
    which.add_argument(
        "--ready-only",
        action="store_true",
        help="only patient-months ready to bill: minutes support a code and every prerequisite holds",
    )
    which.add_argument(
        "--holds",
        action="store_true",
        help="only patient-months on hold: minutes support a code but a prerequisite fails "
        "(hold_reasons says what and how to fix it)",
    )
    b.add_argument("--user", default=None, help="who asks (recorded in the access log; default: login name)")
    b.set_defaults(func=cmd_billing)


if __name__ == "__main__":  # pragma: no cover
    from ccm_core.cli import main

    sys.exit(main(sys.argv[1:]))
