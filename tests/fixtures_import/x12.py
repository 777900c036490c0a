"""Build small, valid X12 835 files for tests (and the example set), with correct SE counts."""

from __future__ import annotations


def _amt(v: float) -> str:
    return f"{v:.2f}"


def build_835(
    claims: list[dict],
    *,
    payer: str = "MEDICARE PART B",
    pay_date: str = "20261120",
    check: str = "EFT20261120",
    payee: str = "RIVERBEND FAMILY MEDICINE",
    comp: str = ":",
    control: str = "000000101",
) -> bytes:
    """claims: [{number, status, charge, paid, patient_resp, pccn, cas: [(group, reason, amount)],
    lines: [{code, modifier, charge, paid, units, date, allowed, cas: [...], remarks: [...], ref6r}]}]"""
    total = sum(c["paid"] for c in claims)
    body = [
        f"BPR*I*{_amt(total)}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*{pay_date}",
        f"TRN*1*{check}*1512345678",
        f"DTM*405*{pay_date}",
        f"N1*PR*{payer}",
        "N3*PO BOX 1000",
        "N4*SPRINGFIELD*IL*62701",
        "PER*BL*PROVIDER SERVICES*TE*8005551212",
        f"N1*PE*{payee}*XX*1234567893",
        "LX*1",
    ]
    for c in claims:
        body.append(
            f"CLP*{c['number']}*{c.get('status', '1')}*{_amt(c['charge'])}*{_amt(c['paid'])}*"
            f"{_amt(c.get('patient_resp', 0))}*MB*{c.get('pccn', 'PCCN' + c['number'][-6:])}*11*1"
        )
        for g, r, a in c.get("cas", []):
            body.append(f"CAS*{g}*{r}*{_amt(a)}")
        body.append("NM1*QC*1*DOE*JOHN****MI*1EG4TE5MK73")
        for ln in c.get("lines", []):
            proc = f"HC{comp}{ln['code']}" + (f"{comp}{ln['modifier']}" if ln.get("modifier") else "")
            body.append(f"SVC*{proc}*{_amt(ln['charge'])}*{_amt(ln['paid'])}**{ln.get('units', 1)}")
            body.append(f"DTM*472*{ln['date']}")
            for g, r, a in ln.get("cas", []):
                body.append(f"CAS*{g}*{r}*{_amt(a)}")
            if ln.get("ref6r"):
                body.append(f"REF*6R*{ln['ref6r']}")
            if ln.get("allowed") is not None:
                body.append(f"AMT*B6*{_amt(ln['allowed'])}")
            for rm in ln.get("remarks", []):
                body.append(f"LQ*HE*{rm}")
    segs = ["ST*835*0001", *body]
    segs.append(f"SE*{len(segs) + 1}*0001")
    isa = (
        f"ISA*00*          *00*          *ZZ*{'MEDICAREPARTB':<15}*ZZ*{'RIVERBEND':<15}*261120*0900*^*00501*"
        f"{control}*0*P*{comp}"
    )
    assert len(isa) == 105, len(isa)
    out = [
        isa,
        f"GS*HP*MEDICAREPARTB*RIVERBEND*{pay_date}*0900*101*X*005010X221A1",
        *segs,
        "GE*1*101",
        f"IEA*1*{control}",
    ]
    return ("~\n".join(out) + "~\n").encode()


def example_remittance() -> bytes:
    """The 835 of data/examples: pays the October 2026 CCM claims, denies one add-on line (CO-16, M53)."""

    def paid_line(code, charge, allowed, units=1):
        coins = round(allowed * 0.2, 2)
        seq = round((allowed - coins) * 0.02, 2)
        paid = round(allowed - coins - seq, 2)
        return {
            "code": code,
            "charge": charge,
            "paid": paid,
            "units": units,
            "date": "20261031",
            "allowed": allowed,
            "cas": [("CO", "45", round(charge - allowed, 2)), ("PR", "2", coins), ("CO", "253", seq)],
        }

    def claim(number, lines):
        return {
            "number": number,
            "status": "1",
            "charge": sum(ln["charge"] for ln in lines),
            "paid": round(sum(ln["paid"] for ln in lines), 2),
            "patient_resp": round(sum(a for ln in lines for g, _r, a in ln["cas"] if g == "PR"), 2),
            "lines": lines,
        }

    denied = {
        "code": "99439",
        "charge": 110.0,
        "paid": 0.0,
        "units": 2,
        "date": "20261031",
        "cas": [("CO", "16", 110.0)],
        "remarks": ["M53"],
    }
    return build_835(
        [
            claim("CLM-2610-1001", [paid_line("99490", 75.0, 66.13), paid_line("99439", 55.0, 50.44)]),
            claim("CLM-2610-1002", [paid_line("99490", 75.0, 66.13)]),
            claim("CLM-2610-1004", [paid_line("99490", 75.0, 66.13), denied]),
            claim("CLM-2610-1005", [paid_line("99490", 75.0, 66.13)]),
        ]
    )
