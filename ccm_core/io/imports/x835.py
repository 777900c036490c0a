"""X12 835 remittance import on top of pyx12 (a maintained X12 library).

Why this shape (measured on the public samples in shared/samples/x12):

* Reading: pyx12's segment reader (``pyx12.x12file.X12Reader``) tokenises the
  interchange with the separators declared in ISA, and checks the envelope
  (ISA/IEA, GS/GE, ST/SE control numbers and segment counts, segment-id syntax).
* Validation: pyx12's map-driven ``X12ContextReader`` validates against the
  005010X221A1 / 004010X091A1 implementation guides; its findings (an
  impossible BPR16 date, a missing PER, a bad SE count...) are reported as
  warnings, because real payer files carry such slips and the claim data in
  them is still intact.
* Loop assignment is ours, not the map walker's: when pyx12 cannot place a
  segment (a service line whose composite separator differs from ISA16, a
  masked ``XX`` qualifier) it leaves it out of the loop tree, so trusting the
  tree would silently drop service lines.  835 claim structure is flat and
  well defined (CLP opens a claim, SVC a line, CAS/LQ/AMT/DTM attach to the
  open one), so we walk the reader's segments ourselves and *reject* the file
  when claim data cannot be read whole.
* Pre-processing before pyx12 sees the text: strip a UTF-8 BOM and the
  indentation/newlines some systems add between segments, and normalise a
  service-line composite written with another separator (``HC>55669`` in a
  file that declares ``:``) -- each reported as a warning.

Rejected (nothing written): no ISA envelope, an invalid or unknown segment id
(``CAS_CO``), a procedure composite without a code, non-numeric money, a bad
service date, a truncated file (no SE/GE/IEA at the end).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from ccm_core.io.imports import store
from ccm_core.io.imports.reader import ImportFileError
from ccm_core.storage import schema

KNOWN_SEGMENTS = {
    "ISA",
    "IEA",
    "GS",
    "GE",
    "ST",
    "SE",
    "BPR",
    "TRN",
    "CUR",
    "REF",
    "DTM",
    "N1",
    "N2",
    "N3",
    "N4",
    "PER",
    "RDM",
    "LX",
    "TS3",
    "TS2",
    "CLP",
    "CAS",
    "NM1",
    "MIA",
    "MOA",
    "AMT",
    "QTY",
    "SVC",
    "LQ",
    "PLB",
    "NTE",
}
CLAIM_STATUS = {"1", "2", "3", "4", "5", "10", "13", "15", "16", "17", "19", "20", "21", "22", "23", "25", "27"}
GROUP_CODES = {"CO", "PR", "OA", "PI", "CR"}
MONEY_RE = re.compile(r"^-?(\d+\.?\d*|\.\d+)$")


class X12Rejected(ImportFileError):
    """The 835's claim data cannot be read whole; carries (line, segment, problem) rows."""

    def __init__(self, message: str, problems: list[tuple[int, str, str]]):
        super().__init__(message)
        self.problems = problems


@dataclass
class Adjustment:
    group_code: str
    carc: str
    amount: float
    quantity: int | None


@dataclass
class Line:
    line_no: int
    qualifier: str
    cpt_code: str
    modifier: str | None
    charge: float | None
    paid: float
    units: int | None
    original_code: str | None = None
    service_date: dt.date | None = None
    allowed: float | None = None
    control_number: str | None = None  # REF*6R
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass
class Claim:
    line_no: int
    claim_number: str
    status_code: str
    total_charge: float | None
    paid_amount: float
    patient_responsibility: float | None
    payer_claim_control_number: str | None
    payer: str | None
    received_date: dt.date
    check_number: str | None
    statement_date: dt.date | None = None
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)


@dataclass
class Parsed835:
    claims: list[Claim]
    warnings: list[str]
    transactions: int


# --------------------------------------------------------------------------- pre-processing


def preprocess(raw: bytes, source: str) -> tuple[str, str, list[str]]:
    """Clean text (one segment per line), the component separator, and warnings about what was fixed."""
    warnings: list[str] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        warnings.append(f"{source}: not UTF-8 text; read as Latin-1.")
    if text.startswith("\ufeff"):
        text = text[1:]
        warnings.append(f"{source}: a UTF-8 byte-order mark before ISA was removed.")
    text = text.lstrip()
    if not text.startswith("ISA"):
        head = text[:3]
        hint = (
            " (the file starts with a transaction, ST, without its ISA/GS envelope)"
            if head.startswith("ST") or head.startswith("GS")
            else ""
        )
        raise X12Rejected(
            f"{source}: not a complete X12 file: it does not start with an ISA header{hint}. "
            "Ask the payer or clearinghouse for the complete 835 file.",
            [(1, "ISA", "the file does not start with an ISA interchange header")],
        )
    if len(text) < 106:
        raise X12Rejected(
            f"{source}: the file is truncated inside its ISA header.",
            [(1, "ISA", "the file ends inside its ISA header")],
        )
    ele, comp, term = text[3], text[104], text[105]
    if ele.isalnum() or term.isalnum() or len({ele, comp, term}) < 3 or text[:106].count(ele) != 16:
        raise X12Rejected(
            f"{source}: the ISA header is malformed (it must be exactly 106 characters with 16 '{ele}' separators).",
            [(1, "ISA", "the ISA header is malformed")],
        )
    pieces = text.split(term)
    if any(p.lstrip("\r\n")[:1] in (" ", "\t") for p in pieces):
        warnings.append(f"{source}: indentation between segments was removed.")
    segments = [s.strip() for s in pieces]
    if segments and segments[-1] == "":
        segments.pop()
    fixed = Counter()
    out = []
    for seg in segments:
        if seg.startswith("SVC" + ele):
            parts = seg.split(ele)
            for i in (1, 6):
                if i < len(parts) and parts[i] and comp not in parts[i]:
                    m = re.match(r"^([A-Z0-9]{2})([^A-Za-z0-9\s.\-])(.+)$", parts[i])
                    if m and m.group(2) != ele:
                        parts[i] = parts[i].replace(m.group(2), comp)
                        fixed[m.group(2)] += 1
            seg = ele.join(parts)
        out.append(seg)
    for sep, n in fixed.items():
        warnings.append(
            f"{source}: {n} service-line procedure composite(s) used '{sep}' instead of the declared "
            f"component separator '{comp}'; read with '{comp}'."
        )
    return (term + "\n").join(out) + term + "\n", comp, warnings


# --------------------------------------------------------------------------- reading


def _date(s: str | None) -> dt.date | None:
    if not s:
        return None
    try:
        if len(s) == 8:
            return dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
        if len(s) == 6:  # 4010 YYMMDD
            return dt.date(2000 + int(s[:2]), int(s[2:4]), int(s[4:]))
    except ValueError:
        return None
    return None


def _val(seg, i: int, j: int | None = None) -> str:
    ref = f"{i:02d}" if j is None else f"{i:02d}-{j}"
    try:
        v = seg.get_value(ref)
    except (IndexError, Exception):  # pyx12 raises EngineError for odd paths
        return ""
    return (v or "").strip()


class _Collector:
    """pyx12 error-handler protocol that only records (line, message), for the validation warnings."""

    def __init__(self):
        from pyx12.error_handler import errh_list

        self._base = errh_list()
        self.messages: list[tuple[int, str]] = []
        self.line = 0

    def __getattr__(self, name):  # lifecycle hooks we do not need
        return getattr(self._base, name)

    def add_seg(self, map_node, seg, seg_count, cur_line, ls_id):
        self.line = cur_line

    def handle_errors(self, err_list):
        for _err_type, _code, msg, _val, src_line in err_list:
            self.messages.append((src_line or self.line, msg))

    def isa_error(self, code, msg):
        self.messages.append((self.line, msg))

    gs_error = st_error = isa_error

    def seg_error(self, code, msg, value=None, src_line=None):
        self.messages.append((src_line or self.line, msg))

    def ele_error(self, code, msg, bad_value, refdes=None):
        self.messages.append((self.line, msg + (f" ({bad_value})" if bad_value else "")))


def validation_warnings(clean: str, source: str, limit: int = 15) -> list[str]:
    """pyx12's implementation-guide findings, grouped, as warnings (never fatal on their own)."""
    import logging

    import pyx12.params
    import pyx12.x12context

    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    errh = _Collector()
    try:
        src = pyx12.x12context.X12ContextReader(pyx12.params.params(), errh, io.StringIO(clean))
        for _ in src.iter_segments():
            pass
    except Exception as exc:  # a validator limitation is not a data problem
        return [
            f"{source}: pyx12 validation stopped early ({type(exc).__name__}: {exc}); "
            "the claim data was checked by the importer itself."
        ]
    groups: dict[str, list[int]] = {}
    for line, msg in errh.messages:
        key = re.sub(r"Started at \S+", "", msg).strip()
        groups.setdefault(key, []).append(line)
    out = []
    for msg, lines in list(groups.items())[:limit]:
        where = ", ".join(str(n) for n in sorted(set(lines))[:5]) + ("..." if len(set(lines)) > 5 else "")
        out.append(f"{source}: X12 compliance (pyx12), segment {where}: {msg}")
    if len(groups) > limit:
        out.append(f"{source}: ... and {len(groups) - limit} more kinds of X12 compliance findings.")
    return out


def parse_835(raw: bytes, source: str) -> Parsed835:
    """Read an 835 into claims, lines, adjustments and remarks, or raise X12Rejected."""
    import pyx12.errors
    import pyx12.x12file

    clean, _comp, warnings = preprocess(raw, source)
    fatal: list[tuple[int, str, str]] = []
    segs = []
    try:
        reader = pyx12.x12file.X12Reader(io.StringIO(clean))
        for n, seg in enumerate(reader, 1):
            segs.append((n, seg))
            for err_type, code, msg, _v, line in reader.pop_errors():
                if err_type == "seg" and code == "1":
                    fatal.append((line or n, seg.get_seg_id() or "?", msg))
                else:
                    warnings.append(f"{source}: segment {line or n}: {msg}")
        for _err_type, _code, msg, _v, _line in reader.pop_errors():
            warnings.append(f"{source}: {msg}")
    except (pyx12.errors.X12Error, pyx12.errors.EngineError) as exc:
        raise X12Rejected(f"{source}: the X12 envelope cannot be read: {exc}", [(1, "ISA", str(exc))]) from None
    except (IndexError, KeyError, ValueError, TypeError, AttributeError) as exc:
        # pyx12's reader trips over some broken envelopes (e.g. a GE without its GS): that is the file's fault.
        n = len(segs) + 1
        raise X12Rejected(
            f"{source}: rejected, nothing imported: the X12 structure is broken near segment {n} "
            f"(the reader stopped: {type(exc).__name__}).",
            [(n, "?", "broken X12 structure")],
        ) from None
    claims, tx_count = _walk(segs, source, fatal, warnings)
    if fatal:
        first = "; ".join(f"segment {n} ({sid}): {msg}" for n, sid, msg in fatal[:3])
        more = f" (and {len(fatal) - 3} more)" if len(fatal) > 3 else ""
        raise X12Rejected(
            f"{source}: rejected, nothing imported: the claim data cannot be read whole: {first}{more}.", fatal
        )
    warnings.extend(validation_warnings(clean, source))
    return Parsed835(claims, warnings, tx_count)


def _money(seg, i, n, sid, fatal, required=False) -> float | None:
    v = _val(seg, i)
    if v == "":
        if required:
            fatal.append((n, sid, f"{sid}{i:02d} (amount) is missing"))
        return None
    if not MONEY_RE.match(v):
        fatal.append((n, sid, f"{sid}{i:02d} '{v}' is not an amount"))
        return None
    return round(float(v), 2)


def _walk(segs, source, fatal, warnings):
    """The 835 loop structure: header (BPR/TRN/N1*PR) -> CLP claims -> SVC lines."""
    claims: list[Claim] = []
    claim: Claim | None = None
    line: Line | None = None
    open_st = open_gs = open_isa = False
    tx = 0
    pay_date = prod_date = gs_date = None
    check = payer = None
    in_detail = False
    plb = 0
    fractional: list[tuple[int, str, int]] = []
    last_id = None
    for n, seg in segs:
        sid = seg.get_seg_id() or ""
        last_id = sid
        if sid not in KNOWN_SEGMENTS:
            if not any(f[0] == n for f in fatal):
                fatal.append((n, sid, f"unknown segment id '{sid}' for an 835"))
            continue
        if sid == "ISA":
            open_isa = True
        elif sid == "GS":
            open_gs = True
            gs_date = _date(_val(seg, 4))
        elif sid == "ST":
            open_st, tx, in_detail = True, tx + 1, False
            claim = line = None
            pay_date = prod_date = check = payer = None
            if _val(seg, 1) != "835":
                fatal.append((n, sid, f"transaction set {_val(seg, 1)!r} is not an 835"))
        elif sid == "BPR":
            raw = _val(seg, 16)
            pay_date = _date(raw)
            if raw and pay_date is None:
                warnings.append(
                    f"{source}: segment {n}: BPR16 payment date '{raw}' is not a valid date; "
                    "using the production date (DTM*405) instead."
                )
        elif sid == "TRN":
            check = _val(seg, 2) or None
        elif sid == "DTM" and not in_detail:
            if _val(seg, 1) == "405":
                prod_date = _date(_val(seg, 2))
        elif sid == "N1" and not in_detail and _val(seg, 1) == "PR":
            payer = _val(seg, 2)[:60] or None
        elif sid == "LX":
            in_detail = True
            claim = line = None
        elif sid == "CLP":
            in_detail = True
            line = None
            number = _val(seg, 1)
            status = _val(seg, 2)
            if not number:
                fatal.append((n, sid, "CLP01 (claim number) is missing"))
            if not status.isdigit():
                fatal.append((n, sid, f"CLP02 claim status '{status}' is not a status code"))
            elif status not in CLAIM_STATUS:
                warnings.append(f"{source}: segment {n}: unusual claim status code {status}.")
            received = pay_date or prod_date or gs_date
            if received is None:
                fatal.append((n, sid, "no payment date: BPR16, DTM*405 and GS04 are all missing or invalid"))
                received = dt.date(1900, 1, 1)
            elif pay_date is None and not any("BPR16" in w for w in warnings):
                warnings.append(
                    f"{source}: no valid BPR16 payment date; remittances dated by "
                    f"{'DTM*405' if prod_date else 'GS04'} ({received})."
                )
            claim = Claim(
                line_no=n,
                claim_number=number[:38],
                status_code=status[:3],
                total_charge=_money(seg, 3, n, sid, fatal),
                paid_amount=_money(seg, 4, n, sid, fatal, required=True) or 0.0,
                patient_responsibility=_money(seg, 5, n, sid, fatal),
                payer_claim_control_number=(_val(seg, 7) or None),
                payer=payer,
                received_date=received,
                check_number=check[:50] if check else None,
            )
            if len(number) > 38:
                fatal.append((n, sid, f"CLP01 claim number is longer than 38 characters: {number!r}"))
            claims.append(claim)
        elif sid == "SVC":
            if claim is None:
                fatal.append((n, sid, "service line (SVC) outside a claim (CLP)"))
                continue
            qual, code = _val(seg, 1, 1), _val(seg, 1, 2)
            if len(qual) != 2 or not code:
                fatal.append(
                    (
                        n,
                        sid,
                        f"procedure composite SVC01 '{_val(seg, 1)}' has no procedure code "
                        "(qualifier and code must be separated by the component separator)",
                    )
                )
                continue
            mods = [m for m in (_val(seg, 1, k) for k in (3, 4, 5, 6)) if m]
            if len(code) > 5:
                warnings.append(
                    f"{source}: segment {n}: procedure code '{code}' ({qual}) is longer than 5 "
                    "characters; stored truncated to 5 and will not match a claim line."
                )
            units_raw = _val(seg, 5)
            units = None
            if units_raw:
                if not MONEY_RE.match(units_raw):
                    fatal.append((n, sid, f"SVC05 units '{units_raw}' is not a number"))
                else:
                    units = int(round(float(units_raw)))
                    if float(units_raw) != units:
                        fractional.append((n, units_raw, units))
            orig = _val(seg, 6, 2) or None
            line = Line(
                line_no=n,
                qualifier=qual,
                cpt_code=code[:5].upper(),
                modifier=(",".join(mods[:3]) or None),
                charge=_money(seg, 2, n, sid, fatal, required=True),
                paid=_money(seg, 3, n, sid, fatal, required=True) or 0.0,
                units=units if units_raw else 1,
                original_code=orig[:5].upper() if orig else None,
            )
            if len(mods) > 3:
                warnings.append(f"{source}: segment {n}: more than 3 modifiers; kept {line.modifier}.")
            claim.lines.append(line)
        elif sid == "CAS":
            target = line or claim
            if target is None:
                fatal.append((n, sid, "adjustment (CAS) outside a claim"))
                continue
            group = _val(seg, 1)
            if group not in GROUP_CODES:
                fatal.append((n, sid, f"CAS01 group code '{group}' is not one of {', '.join(sorted(GROUP_CODES))}"))
                continue
            found = 0
            for k in range(2, 20, 3):
                reason = _val(seg, k)
                if not reason:
                    continue
                amount = _money(seg, k + 1, n, sid, fatal, required=True)
                qty_raw = _val(seg, k + 2)
                qty = None
                if qty_raw:
                    if MONEY_RE.match(qty_raw):
                        qty = int(round(float(qty_raw)))
                    else:
                        fatal.append((n, sid, f"CAS{k + 2:02d} quantity '{qty_raw}' is not a number"))
                if len(reason) > 5:
                    fatal.append((n, sid, f"adjustment reason code '{reason}' is longer than 5 characters"))
                target.adjustments.append(Adjustment(group, reason[:5], amount or 0.0, qty))
                found += 1
            if not found:
                fatal.append((n, sid, "CAS without any reason code"))
        elif sid == "DTM" and claim is not None:
            q, d = _val(seg, 1), _val(seg, 2)
            if line is not None and q in ("472", "150"):
                parsed = _date(d)
                if parsed is None:
                    fatal.append((n, sid, f"service date '{d}' is not a valid date"))
                elif q == "472" or line.service_date is None:
                    line.service_date = parsed
            elif line is None and q in ("232", "050", "036", "233"):
                if q == "232":
                    claim.statement_date = _date(d)
        elif sid == "AMT" and line is not None and _val(seg, 1) == "B6":
            line.allowed = _money(seg, 2, n, sid, fatal)
        elif sid == "REF" and line is not None and _val(seg, 1) == "6R":
            line.control_number = _val(seg, 2) or None
        elif sid == "LQ":
            if line is None:
                fatal.append((n, sid, "remark (LQ) outside a service line"))
            elif _val(seg, 1) == "HE" and _val(seg, 2):
                line.remarks.append(_val(seg, 2)[:8])
        elif sid == "MOA" and claim is not None:
            claim.remarks.extend(_val(seg, k)[:8] for k in (3, 4, 5, 6, 7) if _val(seg, k))
        elif sid == "MIA" and claim is not None:
            claim.remarks.extend(_val(seg, k)[:8] for k in (5, 20, 21, 22, 23) if _val(seg, k))
        elif sid == "PLB":
            plb += 1
            claim = line = None
        elif sid == "SE":
            if not open_st:
                fatal.append((n, sid, "SE without ST"))
            open_st, claim, line = False, None, None
        elif sid == "GE":
            open_gs = False
        elif sid == "IEA":
            open_isa = False
    if open_st or open_gs or open_isa or last_id != "IEA":
        n = segs[-1][0] if segs else 0
        fatal.append(
            (
                n,
                last_id or "?",
                "the file is truncated: it ends without closing its "
                + ("transaction (SE)" if open_st else "group (GE)" if open_gs else "interchange (IEA)"),
            )
        )
    if fractional:
        n, raw_units, units = fractional[0]
        warnings.append(
            f"{source}: {len(fractional)} service line(s) have fractional units (first: {raw_units} at "
            f"segment {n}); stored rounded to whole units (e.g. {units})."
        )
    if plb:
        warnings.append(
            f"{source}: {plb} provider-level adjustment segment(s) (PLB) are not claim data and were not imported."
        )
    return claims, tx


# --------------------------------------------------------------------------- matching and writing


@dataclass
class X12Outcome:
    claims: int = 0
    lines: int = 0
    adjustments: int = 0
    remarks: int = 0
    matched_claims: int = 0
    unmatched_claims: list[str] = field(default_factory=list)
    unmatched_lines: list[str] = field(default_factory=list)
    already_present: int = 0
    counts: dict[str, store.UpsertCounts] = field(default_factory=dict)


def _match_lines(claim: Claim, candidates: pd.DataFrame) -> list[int | None]:
    """SVC -> claim line: REF*6R line number + code, then code + date, then code alone (each claim line once)."""
    used: set[int] = set()
    out: list[int | None] = []
    cands = candidates.sort_values("line_number")
    rows = list(cands.itertuples(index=False))
    for ln in claim.lines:
        code = ln.original_code or ln.cpt_code
        pick = None
        tests = []
        if ln.control_number and ln.control_number.isdigit():
            tests.append(lambda r, code=code, ln=ln: r.cpt_code == code and r.line_number == int(ln.control_number))
        tests.append(
            lambda r, code=code, ln=ln: (
                r.cpt_code == code and ln.service_date is not None and r.service_date == ln.service_date
            )
        )
        tests.append(lambda r, code=code, ln=ln: r.cpt_code == code and ln.service_date is None)
        for test in tests:
            pick = next((int(r.id) for r in rows if int(r.id) not in used and test(r)), None)
            if pick is not None:
                break
        if pick is not None:
            used.add(pick)
        out.append(pick)
    return out


def _remit_key(claim_number, check, pccn, status, paid, received):
    return (claim_number, check or "", pccn or "", status, f"{paid:.2f}", str(received))


def write_835(conn, parsed: Parsed835, source: str, batch_id_fn) -> X12Outcome:
    """Store remittances; match to our claims; skip remittances already stored (same check, claim, amounts)."""
    out = X12Outcome()
    claims = parsed.claims
    if not claims:
        return out
    numbers = list(dict.fromkeys(c.claim_number for c in claims))
    r = schema.remittance
    existing = store.fetch_in(
        conn,
        r,
        "claim_number",
        numbers,
        ["claim_number", "check_number", "payer_claim_control_number", "status_code", "paid_amount", "received_date"],
    )
    seen = Counter(_remit_key(*row) for row in existing.itertuples(index=False))
    todo = []
    for c in claims:
        k = _remit_key(
            c.claim_number, c.check_number, c.payer_claim_control_number, c.status_code, c.paid_amount, c.received_date
        )
        if seen[k] > 0:
            seen[k] -= 1
            out.already_present += 1
        else:
            todo.append(c)
    if not todo:
        return out
    claim_ids = store.key_ids(conn, schema.claim, "claim_number", numbers)
    lines = store.fetch_in(
        conn,
        schema.claim_line,
        "claim_id",
        list(set(claim_ids.values())),
        ["id", "claim_id", "line_number", "cpt_code", "service_date"],
    )
    prior = Counter(existing["claim_number"])  # every stored remittance for these claim numbers
    batch_id = batch_id_fn()
    seq = Counter()
    remit_rows = []
    for c in todo:
        seq[c.claim_number] += 1
        cid = claim_ids.get(c.claim_number)
        remit_rows.append(
            {
                "claim_id": None if cid is None else int(cid),
                "claim_number": c.claim_number,
                "payer": c.payer,
                "payer_claim_control_number": (c.payer_claim_control_number or None)
                and c.payer_claim_control_number[:50],
                "status_code": c.status_code,
                "total_charge": c.total_charge,
                "paid_amount": c.paid_amount,
                "patient_responsibility": c.patient_responsibility,
                "received_date": c.received_date,
                "received_month": c.received_date.year * 100 + c.received_date.month,
                "check_number": c.check_number,
                "adjudication_seq": int(prior.get(c.claim_number, 0)) + seq[c.claim_number],
                "source_file": source[:255],
                "import_batch_id": batch_id,
            }
        )
        if cid is None:
            out.unmatched_claims.append(c.claim_number)
        else:
            out.matched_claims += 1
    tables = [r, schema.remittance_line, schema.remittance_adjustment, schema.remittance_remark]
    before = {t.name: store.max_id(conn, t) for t in tables}
    remit_ids = [row[0] for row in conn.execute(r.insert().returning(r.c.id, sort_by_parameter_order=True), remit_rows)]
    line_rows, line_owner = [], []
    for c, rid in zip(todo, remit_ids):
        cid = claim_ids.get(c.claim_number)
        matches = _match_lines(c, lines[lines["claim_id"] == cid]) if cid is not None else [None] * len(c.lines)
        for ln, match in zip(c.lines, matches):
            line_rows.append(
                {
                    "remittance_id": rid,
                    "claim_line_id": match,
                    "cpt_code": ln.cpt_code,
                    "modifier": ln.modifier,
                    "units": ln.units,
                    "charge": ln.charge,
                    "allowed": ln.allowed,
                    "paid": ln.paid,
                    "service_date": ln.service_date,
                    "import_batch_id": batch_id,
                }
            )
            line_owner.append(ln)
            if match is None and cid is not None:
                out.unmatched_lines.append(f"{c.claim_number} {ln.cpt_code} {ln.service_date or ''}".strip())
    line_ids = []
    if line_rows:
        rl = schema.remittance_line
        line_ids = [
            row[0] for row in conn.execute(rl.insert().returning(rl.c.id, sort_by_parameter_order=True), line_rows)
        ]
    adj_rows, remark_rows = [], []
    lines_by_remit: dict[int, list[tuple[Line, int]]] = {}
    for ln, lid, row in zip(line_owner, line_ids, line_rows):
        lines_by_remit.setdefault(row["remittance_id"], []).append((ln, lid))
    for c, rid in zip(todo, remit_ids):  # file order: claim-level first, then each line's
        for owner, lid in [(c, None), *lines_by_remit.get(rid, [])]:
            adj_rows += [
                {
                    "remittance_id": rid,
                    "remittance_line_id": lid,
                    "group_code": a.group_code,
                    "carc": a.carc,
                    "amount": a.amount,
                    "quantity": a.quantity,
                    "import_batch_id": batch_id,
                }
                for a in owner.adjustments
            ]
            remark_rows += [
                {"remittance_id": rid, "remittance_line_id": lid, "rarc": code, "import_batch_id": batch_id}
                for code in owner.remarks
            ]
    if adj_rows:
        conn.execute(schema.remittance_adjustment.insert(), adj_rows)
    if remark_rows:
        conn.execute(schema.remittance_remark.insert(), remark_rows)
    for t in tables:
        store.record_inserts(conn, t, batch_id, before[t.name])
    out.claims, out.lines, out.adjustments, out.remarks = (
        len(remit_rows),
        len(line_rows),
        len(adj_rows),
        len(remark_rows),
    )
    out.counts = {
        "remittance": store.UpsertCounts(inserted=len(remit_rows)),
        "remittance_line": store.UpsertCounts(inserted=len(line_rows)),
        "remittance_adjustment": store.UpsertCounts(inserted=len(adj_rows)),
        "remittance_remark": store.UpsertCounts(inserted=len(remark_rows)),
    }
    return out
