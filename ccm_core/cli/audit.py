"""``python -m ccm_core audit`` and ``python -m ccm_core sample``: the checklist and sample pulls for scripts.

Same functions as the Audit page, so a compliance lead can schedule the month's checklist or reproduce a
sample from its seed without a browser.
"""

from __future__ import annotations

import argparse
import json
import sys

from ccm_core.audit import checklist as audit
from ccm_core.audit import sampling
from ccm_core.cli import add_db_argument
from ccm_core.engine.filters import Filters
from ccm_core.io.spreadsheet import write_csv
from ccm_core.security.access_log import log_access, log_cli_output
from ccm_core.storage.db import format_month, has_schema, make_engine, parse_month


def add_cli(sub) -> None:
    a = sub.add_parser("audit", help="the audit checklist for every billed CCM patient-month of a month")
    add_db_argument(a)
    a.add_argument("--month", required=True, help="service month, YYYY-MM")
    a.add_argument("--format", choices=("json", "csv", "table"), default="json")
    a.add_argument("--fails-only", action="store_true", help="only items that fail")
    a.add_argument(
        "--population",
        choices=audit.POPULATIONS,
        default="billed",
        help="billed patient-months (default), or prebill: months whose minutes support a code and are "
        "not billed yet (the prospective check)",
    )
    a.add_argument("--user", default=None, help="who asks (recorded in the access log; default: login name)")
    a.set_defaults(func=_audit)

    s = sub.add_parser("sample", help="pull a reproducible audit sample of billed CCM patient-months")
    add_db_argument(s)
    s.add_argument("--from", dest="month_from", required=True, help="first service month, YYYY-MM")
    s.add_argument("--to", dest="month_to", required=True, help="last service month, YYYY-MM")
    s.add_argument("--size", type=int, required=True, help="patient-months to draw")
    s.add_argument("--seed", type=int, required=True, help="random seed (same inputs + seed = same sample)")
    s.add_argument("--strata", default="", help=f"comma-separated, any of: {', '.join(sampling.STRATA)}")
    s.add_argument("--flagged-only", action="store_true", help="only patient-months with an engine finding")
    s.add_argument(
        "--population",
        choices=audit.POPULATIONS,
        default="billed",
        help="billed patient-months (default), or prebill: supported and not billed yet",
    )
    s.add_argument("--format", choices=("json", "csv", "table"), default="json")
    s.add_argument("--save", action="store_true", help="store the pull (audit_sample) so it can be reopened")
    s.add_argument("--user", default="", help="who pulls the sample (required with --save; recorded in the access log)")
    s.add_argument("--name", default="", help="a name for the saved sample")
    s.set_defaults(func=_sample)


def _with_mrn(conn, df):
    """The MRN beside the internal patient id, so a practice can match its own records."""
    if df.empty:
        return df.assign(mrn=[]) if "mrn" not in df.columns else df
    heads = audit.patient_headers(conn, df["patient_id"].tolist())[["patient_id", "mrn"]]
    out = df.merge(heads, on="patient_id", how="left")
    cols = list(df.columns)
    cols.insert(cols.index("patient_id") + 1, "mrn")
    return out[cols]


def _engine(args):
    engine = make_engine(args.db)
    if not has_schema(engine):
        raise ValueError("The database has no CCM schema yet: run `python -m ccm_core init-db` first.")
    return engine


def _audit(args: argparse.Namespace) -> int:
    month = parse_month(args.month)
    engine = _engine(args)
    with engine.connect() as conn:
        df = audit.checklist_for_months(conn, Filters.for_month(month), population=args.population)
        df = _with_mrn(conn, df)
    if args.fails_only:
        df = df[df["result"] == "fail"]
    # Patient-level output: the access-log row is written before any of it is printed.
    log_cli_output(
        engine,
        user=args.user,
        command="audit",
        detail=f"{format_month(month)}, {len(df)} checklist rows, {args.format}",
        patient_count=int(df["patient_id"].nunique()) if not df.empty else 0,
    )
    if args.format == "csv":
        write_csv(df, sys.stdout)
        return 0
    if args.format == "table":
        print(df.to_string(index=False) if not df.empty else f"No {args.population} CCM patient-months in that month.")
        return 0
    summary = {
        k: {r: int(((df["item_key"] == k) & (df["result"] == r)).sum()) for r in audit.RESULTS} for k in audit.ITEM_KEYS
    }
    out = {
        "month": format_month(month),
        "patient_months": int(df[["patient_id", "service_month"]].drop_duplicates().shape[0]),
        "summary": summary,
        "items": df.to_dict(orient="records"),
    }
    print(json.dumps(out, indent=2, default=str))
    return 0


def _sample(args: argparse.Namespace) -> int:
    strata = tuple(x.strip() for x in args.strata.split(",") if x.strip())
    request = sampling.SampleRequest(
        month_from=parse_month(args.month_from),
        month_to=parse_month(args.month_to),
        size=args.size,
        seed=args.seed,
        strata=strata,
        flagged_only=args.flagged_only,
        population=args.population,
    )
    if args.save and not args.user.strip():
        raise ValueError("--save needs --user NAME (the pull is recorded with who made it).")
    engine = _engine(args)
    with engine.begin() as conn:
        smp = sampling.pull_sample(conn, request)
        sample_id = sampling.save_sample(conn, smp, args.user.strip(), args.name) if args.save else None
        items = _with_mrn(conn, smp.items[["position", "patient_id", "service_month", "stratum"]])
    if args.save:
        log_access(
            engine,
            username=args.user.strip(),
            role=None,
            action="sample_pull",
            page="cli",
            detail=f"sample #{sample_id}: {json.dumps(request.to_json(), sort_keys=True)}",
            patient_count=int(smp.items["patient_id"].nunique()),
        )
    if not args.save:  # a saved pull is logged above as sample_pull; an unsaved one still lists patients
        log_cli_output(
            engine,
            user=args.user,
            command="sample",
            detail=f"unsaved pull: {json.dumps(request.to_json(), sort_keys=True)}",
            patient_count=int(items["patient_id"].nunique()) if not items.empty else 0,
        )
    if args.format == "csv":
        write_csv(items, sys.stdout)
        return 0
    if args.format == "table":
        print(items.to_string(index=False) if not items.empty else "The population is empty.")
        return 0
    out = {
        "sample_id": sample_id,
        "inputs": request.to_json(),
        "population_size": smp.population_size,
        "allocation": smp.allocation,
        "outlier_threshold": smp.outlier_threshold,
        "items": [
            {"position": int(p), "patient_id": int(pid), "mrn": mrn, "service_month": int(m), "stratum": st}
            for p, pid, mrn, m, st in zip(
                items["position"], items["patient_id"], items["mrn"], items["service_month"], items["stratum"]
            )
        ],
    }
    print(json.dumps(out, indent=2))
    return 0
