"""Tiny row builders for hand-worked test cohorts.

Tests state only what matters to the rule under test (``b.time(p, minutes=19,
on=date(2025, 3, 5))``) and let the builder fill every other NOT NULL column
with a sensible default, so a cohort reads like the worked example it encodes.
Every method inserts one row (plus its obvious children) and returns its id.

Defaults worth knowing:
* ``patient()`` without arguments uses one shared default clinic, billing
  practitioner (with a practitioner staff row) and clinical care manager.
* ``time()`` gives each entry a started_at/ended_at that never overlaps the
  patient's earlier entries that day (08:00, then after the previous entry plus
  5 minutes), unless ``start=`` is given: overlap is only ever deliberate.
* ``claim()`` charges 100.00 per unit unless ``charges=`` is given.
* ``paid()`` pays the claim's full charge unless ``amount=`` is given;
  ``denied()`` writes a zero-paid status-4 remittance with one adjustment.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ccm_core.storage import schema as s


def month_of(d: dt.date) -> int:
    return d.year * 100 + d.month


def _month_end(d: dt.date) -> dt.date:
    nxt = dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


class Builder:
    """Insert minimal valid rows into an empty schema database.

    Use inside a transaction: ``with engine.begin() as conn: b = Builder(conn)``.
    """

    def __init__(self, conn: Connection):
        self.conn = conn
        self._seq = itertools.count(1)
        self._practice_id: int | None = None
        self._clinic_id: int | None = None
        self._practitioner_id: int | None = None
        self._care_manager_id: int | None = None
        self._next_start: dict[tuple[int, dt.date], dt.datetime] = {}
        self.practitioner_staff: dict[int, int] = {}  # practitioner id -> its staff row id
        self.last_claim_line_ids: list[int] = []

    # ------------------------------------------------------------------ helpers
    def _n(self) -> int:
        return next(self._seq)

    def _insert(self, table, **values) -> int:
        return int(self.conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one())

    # ------------------------------------------------------------------ organisation
    def practice(self, name: str = "Test Practice", **kw) -> int:
        pid = self._insert(s.practice, name=name, **kw)
        if self._practice_id is None:
            self._practice_id = pid
        return pid

    def clinic(self, code: str | None = None, name: str | None = None, **kw) -> int:
        if "practice_id" not in kw:
            kw["practice_id"] = self._practice_id or self.practice()
        n = self._n()
        cid = self._insert(s.clinic, code=code or f"C{n}", name=name or f"Clinic {n}", **kw)
        if self._clinic_id is None:
            self._clinic_id = cid
        return cid

    def practitioner(self, npi: str | None = None, with_staff: bool = True, **kw) -> int:
        """A billing practitioner; also a staff row (practitioner_id set) so their own time can be logged."""
        n = self._n()
        kw.setdefault("first_name", "Pat")
        kw.setdefault("last_name", f"Doctor{n}")
        kw.setdefault("credential", "MD")
        if "clinic_id" not in kw:
            kw["clinic_id"] = self.default_clinic()
        pid = self._insert(s.practitioner, npi=npi or f"{1000000000 + n}", **kw)
        if with_staff:
            self.practitioner_staff[pid] = self.staff(
                credential=kw["credential"],
                role="practitioner",
                clinical=True,
                practitioner_id=pid,
                first_name=kw["first_name"],
                last_name=kw["last_name"],
            )
        return pid

    def staff(
        self,
        clinical: bool = True,
        role: str | None = None,
        credential: str | None = None,
        practitioner_id: int | None = None,
        **kw,
    ) -> int:
        n = self._n()
        kw.setdefault("first_name", "Sam")
        kw.setdefault("last_name", f"Staff{n}")
        kw.setdefault("external_id", f"S{n}")
        return self._insert(
            s.staff,
            is_clinical=clinical,
            role=role or ("care_manager" if clinical else "scheduler"),
            credential=credential or ("RN" if clinical else "none"),
            practitioner_id=practitioner_id,
            **kw,
        )

    def nonclinical_staff(self, **kw) -> int:
        return self.staff(clinical=False, **kw)

    def default_clinic(self) -> int:
        return self._clinic_id or self.clinic()

    def default_practitioner(self) -> int:
        if self._practitioner_id is None:
            self._practitioner_id = self.practitioner()
        return self._practitioner_id

    def default_care_manager(self) -> int:
        if self._care_manager_id is None:
            self._care_manager_id = self.staff()
        return self._care_manager_id

    def staff_of(self, practitioner_id: int) -> int:
        """The staff row a practitioner logs their own minutes under."""
        return self.practitioner_staff[practitioner_id]

    # ------------------------------------------------------------------ patients
    def patient(self, **kw) -> int:
        n = self._n()
        kw.setdefault("mrn", f"MRN{n:06d}")
        kw.setdefault("first_name", "Test")
        kw.setdefault("last_name", f"Patient{n}")
        kw.setdefault("birth_date", dt.date(1948, 5, 17))
        kw.setdefault("payer", "Medicare Part B")
        if "clinic_id" not in kw:
            kw["clinic_id"] = self.default_clinic()
        if "billing_practitioner_id" not in kw:
            kw["billing_practitioner_id"] = self.default_practitioner()
        if "care_manager_id" not in kw:
            kw["care_manager_id"] = self.default_care_manager()
        return self._insert(s.patient, **kw)

    def diagnosis(self, patient_id: int, icd10: str, **kw) -> int:
        return self._insert(s.diagnosis, patient_id=patient_id, icd10=icd10.replace(".", "").upper(), **kw)

    def diagnoses(self, patient_id: int, codes: Iterable[str]) -> list[int]:
        return [self.diagnosis(patient_id, c) for c in codes]

    def eligibility_override(
        self,
        patient_id: int,
        eligible: bool,
        practitioner_id: int | None = None,
        decided_on: dt.date = dt.date(2025, 1, 1),
        reason: str = "practitioner judgement",
        **kw,
    ) -> int:
        return self._insert(
            s.eligibility_override,
            patient_id=patient_id,
            eligible=eligible,
            reason=reason,
            practitioner_id=practitioner_id or self.default_practitioner(),
            decided_on=decided_on,
            **kw,
        )

    def enrollment(
        self, patient_id: int, status: str, on: dt.date, reason: str | None = None, program: str = "CCM", **kw
    ) -> int:
        return self._insert(
            s.enrollment_event,
            patient_id=patient_id,
            status=status,
            event_date=on,
            reason=reason,
            program=program,
            **kw,
        )

    def funnel(self, patient_id: int, upto: str, on: dt.date, reason: str | None = None) -> list[int]:
        """Events identified -> ... -> ``upto`` one day apart, ending on ``on`` (declined/disenrolled get ``reason``)."""
        order = ["identified", "outreached", "reached", "consented", "enrolled"]
        if upto in order:
            steps = order[: order.index(upto) + 1]
        elif upto == "declined":
            steps = ["identified", "outreached", "reached", "declined"]
        elif upto == "disenrolled":
            steps = order + ["disenrolled"]
        else:
            steps = [upto]
        start = on - dt.timedelta(days=len(steps) - 1)
        return [
            self.enrollment(
                patient_id,
                st,
                start + dt.timedelta(days=i),
                reason=reason if st in ("declined", "disenrolled", "ineligible") else None,
            )
            for i, st in enumerate(steps)
        ]

    def consent(
        self,
        patient_id: int,
        on: dt.date | None = dt.date(2025, 1, 2),
        decision: str = "accepted",
        program: str = "CCM",
        method: str | None = "verbal",
        complete: bool = True,
        **kw,
    ) -> int:
        """An accepted, dated consent with every disclosure documented (``complete=False`` documents none)."""
        for key in (
            "disclosed_cost_sharing",
            "disclosed_one_practitioner",
            "disclosed_right_to_stop",
            "disclosed_info_sharing",
        ):
            kw.setdefault(key, complete)
        if "staff_id" not in kw:
            kw["staff_id"] = self.default_care_manager()
        if "practitioner_id" not in kw:
            kw["practitioner_id"] = self._patient_practitioner(patient_id)
        return self._insert(
            s.consent, patient_id=patient_id, program=program, decision=decision, consent_date=on, method=method, **kw
        )

    def care_plan(
        self, patient_id: int, established: dt.date = dt.date(2025, 1, 2), version: int | None = None, **kw
    ) -> int:
        if version is None:
            prior = self.conn.execute(
                select(s.care_plan.c.version)
                .where(s.care_plan.c.patient_id == patient_id)
                .order_by(s.care_plan.c.version.desc())
            ).first()
            version = (prior[0] + 1) if prior else 1
        kw.setdefault("shared_with_patient_date", established)
        kw.setdefault("signed_by_practitioner_id", self._patient_practitioner(patient_id))
        return self._insert(s.care_plan, patient_id=patient_id, version=version, established_date=established, **kw)

    def complexity(self, patient_id: int, month: int, mdm_level: str = "moderate", **kw) -> int:
        return self._insert(
            s.complexity_assessment, patient_id=patient_id, service_month=month, mdm_level=mdm_level, **kw
        )

    def visit(self, patient_id: int, on: dt.date, cpt: str = "99214", visit_type: str = "EM", **kw) -> int:
        kw.setdefault("practitioner_id", self._patient_practitioner(patient_id))
        n = self._n()
        return self._insert(
            s.visit,
            patient_id=patient_id,
            visit_date=on,
            cpt_code=cpt,
            visit_type=visit_type,
            external_id=kw.pop("external_id", f"V{n}"),
            **kw,
        )

    def stay(self, patient_id: int, admit: dt.date, discharge: dt.date | None, kind: str = "inpatient", **kw) -> int:
        """A facility stay; ``discharge=None`` means the patient is still in."""
        n = self._n()
        return self._insert(
            s.facility_stay,
            patient_id=patient_id,
            admit_date=admit,
            discharge_date=discharge,
            kind=kind,
            external_id=kw.pop("external_id", f"FS{n}"),
            **kw,
        )

    # ------------------------------------------------------------------ time
    def time(
        self,
        patient_id: int,
        minutes: int,
        on: dt.date,
        staff_id: int | None = None,
        program: str = "CCM",
        start: dt.datetime | dt.time | None = None,
        activity: str = "phone_call",
        note: str | None = "Called patient; reviewed BP log and medication adherence",
        **kw,
    ) -> int:
        """One time-log entry; by default by the patient's care manager (clinical), never overlapping others."""
        if staff_id is None:
            staff_id = self._patient_care_manager(patient_id)
        if isinstance(start, dt.time):
            start = dt.datetime.combine(on, start)
        if start is None:
            start = self._next_start.get((patient_id, on), dt.datetime.combine(on, dt.time(8, 0)))
        end = start + dt.timedelta(minutes=minutes)
        key = (patient_id, on)
        self._next_start[key] = max(self._next_start.get(key, start), end + dt.timedelta(minutes=5))
        kw.setdefault("practitioner_id", self._patient_practitioner(patient_id))
        kw.setdefault("entered_at", end)
        n = self._n()
        return self._insert(
            s.time_entry,
            patient_id=patient_id,
            staff_id=staff_id,
            program=program,
            service_date=on,
            service_month=month_of(on),
            started_at=start,
            ended_at=end,
            minutes=minutes,
            activity=activity,
            note=note,
            external_id=kw.pop("external_id", f"T{n}"),
            **kw,
        )

    def times(self, patient_id: int, minutes: Sequence[int], on: dt.date, **kw) -> list[int]:
        """Several entries, one per day starting at ``on`` (same month as long as they fit)."""
        return [self.time(patient_id, m, on + dt.timedelta(days=i), **kw) for i, m in enumerate(minutes)]

    # ------------------------------------------------------------------ claims and money
    def claim(
        self,
        patient_id: int,
        lines: Sequence[tuple[str, int]],
        dos: dt.date,
        submitted: dt.date | None = None,
        practitioner_id: int | None = None,
        payer: str | None = None,
        charges: Sequence[float] | None = None,
        frequency_code: str = "1",
        original_claim_id: int | None = None,
        claim_number: str | None = None,
        **kw,
    ) -> int:
        """A claim with one line per (cpt, units); all lines on ``dos``. Line ids land in ``last_claim_line_ids``."""
        practitioner_id = practitioner_id or self._patient_practitioner(patient_id)
        if payer is None:
            payer = self.conn.execute(select(s.patient.c.payer).where(s.patient.c.id == patient_id)).scalar_one()
        submitted = submitted or (_month_end(dos) + dt.timedelta(days=3))
        if charges is None:
            charges = [100.0 * units for _, units in lines]
        n = self._n()
        cid = self._insert(
            s.claim,
            claim_number=claim_number or f"CLM{n:07d}",
            patient_id=patient_id,
            practitioner_id=practitioner_id,
            payer=payer,
            submitted_date=submitted,
            submitted_month=month_of(submitted),
            total_charge=round(float(sum(charges)), 2),
            frequency_code=frequency_code,
            original_claim_id=original_claim_id,
            clinic_id=kw.pop("clinic_id", self._patient_clinic(patient_id)),
            **kw,
        )
        self.last_claim_line_ids = []
        for i, ((code, units), charge) in enumerate(zip(lines, charges), start=1):
            self.last_claim_line_ids.append(
                self._insert(
                    s.claim_line,
                    claim_id=cid,
                    line_number=i,
                    cpt_code=code,
                    units=units,
                    charge=charge,
                    service_date=dos,
                    dos_month=month_of(dos),
                    patient_id=patient_id,
                    practitioner_id=practitioner_id,
                )
            )
        return cid

    def _claim_row(self, claim_id: int):
        return self.conn.execute(select(s.claim).where(s.claim.c.id == claim_id)).one()

    def remittance(
        self,
        claim_id: int,
        status_code: str,
        paid: float,
        received: dt.date,
        seq: int = 1,
        adjustments: Sequence[tuple[str, str, float]] = (),
        remarks: Sequence[str] = (),
        with_lines: bool = False,
        **kw,
    ) -> int:
        """One 835 claim payment (CLP) for ``claim_id``; adjustments are claim-level (group, carc, amount).

        ``with_lines=True`` also writes one remittance line per claim line, paying in proportion to charge.
        """
        c = self._claim_row(claim_id)
        rid = self._insert(
            s.remittance,
            claim_id=claim_id,
            claim_number=c.claim_number,
            payer=c.payer,
            status_code=status_code,
            total_charge=c.total_charge,
            paid_amount=paid,
            received_date=received,
            received_month=month_of(received),
            adjudication_seq=seq,
            **kw,
        )
        if with_lines:
            lines = self.conn.execute(
                select(s.claim_line).where(s.claim_line.c.claim_id == claim_id).order_by(s.claim_line.c.line_number)
            ).all()
            total = sum(float(ln.charge) for ln in lines) or 1.0
            for ln in lines:
                self._insert(
                    s.remittance_line,
                    remittance_id=rid,
                    claim_line_id=ln.id,
                    cpt_code=ln.cpt_code,
                    units=ln.units,
                    charge=ln.charge,
                    paid=round(paid * float(ln.charge) / total, 2),
                    service_date=ln.service_date,
                )
        for group, carc, amount in adjustments:
            self._insert(s.remittance_adjustment, remittance_id=rid, group_code=group, carc=carc, amount=amount)
        for rarc in remarks:
            self._insert(s.remittance_remark, remittance_id=rid, rarc=rarc)
        return rid

    def paid(self, claim_id: int, amount: float | None = None, on: dt.date | None = None, seq: int = 1, **kw) -> int:
        """A paid first (or ``seq``-th) adjudication; CO-45 for any charge not paid."""
        c = self._claim_row(claim_id)
        amount = float(c.total_charge) if amount is None else amount
        on = on or (c.submitted_date + dt.timedelta(days=14))
        adj = kw.pop("adjustments", None)
        if adj is None:
            rest = round(float(c.total_charge) - amount, 2)
            adj = [("CO", "45", rest)] if rest > 0 else []
        return self.remittance(claim_id, "1", amount, on, seq=seq, adjustments=adj, **kw)

    def denied(
        self,
        claim_id: int,
        carc: str = "97",
        group: str = "CO",
        rarc: Sequence[str] | str = (),
        on: dt.date | None = None,
        seq: int = 1,
        **kw,
    ) -> int:
        """A zero-paid, status-4 adjudication carrying one CARC for the whole charge."""
        c = self._claim_row(claim_id)
        on = on or (c.submitted_date + dt.timedelta(days=14))
        remarks = [rarc] if isinstance(rarc, str) else list(rarc)
        return self.remittance(
            claim_id, "4", 0.0, on, seq=seq, adjustments=[(group, carc, float(c.total_charge))], remarks=remarks, **kw
        )

    def appeal(
        self,
        claim_id: int,
        filed: dt.date,
        outcome: str = "pending",
        outcome_date: dt.date | None = None,
        amount_recovered: float | None = None,
        level: str = "redetermination",
        **kw,
    ) -> int:
        n = self._n()
        return self._insert(
            s.appeal,
            claim_id=claim_id,
            filed_date=filed,
            outcome=outcome,
            outcome_date=outcome_date,
            amount_recovered=amount_recovered,
            level=level,
            external_id=kw.pop("external_id", f"A{n}"),
            **kw,
        )

    def setting(self, key: str, value: str) -> None:
        self.conn.execute(s.setting.delete().where(s.setting.c.key == key))
        self.conn.execute(s.setting.insert().values(key=key, value=value))

    # ------------------------------------------------------------------ cohorts
    def enrolled_patient(self, consent_on: dt.date = dt.date(2025, 1, 2), **kw) -> int:
        """A patient with two chronic conditions, the funnel to enrolled, an accepted consent and a care plan."""
        p = self.patient(**kw)
        self.diagnoses(p, ["E119", "I10"])
        self.funnel(p, "enrolled", consent_on)
        self.consent(p, on=consent_on)
        self.care_plan(p, established=consent_on)
        return p

    # ------------------------------------------------------------------ lookups
    def _patient_practitioner(self, patient_id: int) -> int | None:
        return self.conn.execute(
            select(s.patient.c.billing_practitioner_id).where(s.patient.c.id == patient_id)
        ).scalar_one()

    def _patient_care_manager(self, patient_id: int) -> int:
        cm = self.conn.execute(select(s.patient.c.care_manager_id).where(s.patient.c.id == patient_id)).scalar_one()
        return cm or self.default_care_manager()

    def _patient_clinic(self, patient_id: int) -> int:
        return self.conn.execute(select(s.patient.c.clinic_id).where(s.patient.c.id == patient_id)).scalar_one()
