"""Builds a believable CCM practice as column arrays (numpy), ready for bulk loading.

Why arrays: 50,000 patients x 36 months is about a million time entries and
as many remittance rows; per-row Python objects would make that take an hour.
Per-patient or per-row Python loops appear only over the few planted
failures and over small organisation tables.

Dates are int64 day numbers (days since 1970-01-01; ``NULL_DAY`` = NaT) until
the tables are emitted.  Each section draws from its own generator seeded by
(seed, section name), so the same arguments always give the same data and a
change in one section does not reshuffle the others.

The clean data obeys the counting rules the engine applies (clinical staff or
the billing practitioner, never on inpatient/SNF days, after a dated accepted
consent, no overlap with another program), so for clean patient-months the
minutes the practice billed on are exactly the minutes that count.  Failures
are planted on purpose, at low rates, and every one is recorded in
``planted``.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from collections.abc import Callable

import numpy as np

from ccm_core.io.demo import vocab as V
from ccm_core.io.imports.parse import npi_check_digit

NULL_DAY = np.iinfo(np.int64).min  # viewed as datetime64[D] this is NaT
BIG_DAY = np.int64(1) << 40
EPOCH = dt.date(1970, 1, 1)
SLOTS = 4  # stay intervals tracked per patient-month (random stays + one planted)

PATIENT_KINDS = (
    "missing_consent",
    "late_consent",
    "undated_consent",
    "incomplete_consent",
    "practitioner_change_no_reconsent",
    "no_initiating_visit",
    "no_care_plan",
    "care_plan_not_shared",
)
MONTH_KINDS = (
    "inpatient_minutes",
    "nonclinical_minutes",
    "vague_notes",
    "backdated_batch",
    "other_program_overlap",
    "duplicate_ccm_other_practitioner",
    "ccm_with_pcm_same_practitioner",
    "addon_over_cap",
    "addon_without_base",
    "under_billed",
    "over_billed",
)
PLANTED_KINDS = PATIENT_KINDS + MONTH_KINDS

# Minutes per enrolled patient-month: bucket shares (0, 1-14, 15-19, 20-39, 40-59, 60+).
MINUTE_BUCKETS = (0.12, 0.07, 0.08, 0.45, 0.20, 0.08)
PATIENT_FAILURE_RATE = 0.012  # per kind, of patients with a billed month
MONTH_FAILURE_RATE = 0.004  # per kind, of billed patient-months
MIN_PER_KIND = 3
RANDOM_DENIAL_RATE = 0.135
DUPLICATE_RESUBMIT_RATE = 0.01


def day_of(d: dt.date) -> int:
    return (d - EPOCH).days


def to_dates(days: np.ndarray) -> np.ndarray:
    return np.asarray(days, dtype=np.int64).astype("datetime64[D]")


def month_index(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of each day number."""
    return to_dates(days).astype("datetime64[M]").astype(np.int64)


def yyyymm_of_month_index(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.int64)
    return (m // 12 + 1970) * 100 + m % 12 + 1


def weekend(days: np.ndarray) -> np.ndarray:
    return (np.asarray(days) + 3) % 7 >= 5  # 1970-01-01 was a Thursday


def npi_is_valid(npi: str) -> bool:
    return len(npi) == 10 and npi.isdigit() and npi_check_digit(npi[:9]) == npi[9]


# MBI character classes (CMS MBI format): C = 1-9, A = letters without S L O I B Z, N = 0-9, AN = A or N.
_MBI_ALPHA = "ACDEFGHJKMNPQRTUVWXY"
_MBI_ALNUM = _MBI_ALPHA + "0123456789"
_MBI_LAYOUT = (
    "123456789",
    _MBI_ALPHA,
    _MBI_ALNUM,
    "0123456789",
    _MBI_ALPHA,
    _MBI_ALNUM,
    "0123456789",
    _MBI_ALPHA,
    _MBI_ALPHA,
    "0123456789",
    "0123456789",
)


def mbi_for(ids: np.ndarray, salt: int) -> list[str]:
    """Unique MBI-shaped identifiers: a bijective scramble of the id into the MBI's mixed radix."""
    radices = [len(s) for s in _MBI_LAYOUT]
    capacity = math.prod(radices)
    mult = 1_000_003  # prime, coprime with capacity (whose factors are 2, 3, 5)
    v = (np.asarray(ids, dtype=np.int64) * mult + (salt % capacity)) % capacity
    chars = []
    for radix, alphabet in zip(reversed(radices), reversed(_MBI_LAYOUT)):
        chars.append(np.array(list(alphabet))[v % radix])
        v = v // radix
    stacked = np.stack(chars[::-1], axis=1)
    return ["".join(row) for row in stacked.tolist()]


class DemoData:
    """Generates every demo table; ``tables`` maps table name -> {column: array} in insert order."""

    def __init__(
        self,
        patients: int,
        months: int,
        seed: int,
        end_month: int,
        as_of: dt.date,
        progress: Callable[[str], None] | None = None,
    ):
        self.P = int(patients)
        self.M = int(months)
        self.seed = int(seed)
        self.end_month = int(end_month)
        self.as_of = as_of
        self.asof = day_of(as_of)
        self._progress = progress or (lambda _msg: None)
        ey, em = divmod(self.end_month, 100)
        end_mi = (ey - 1970) * 12 + em - 1
        self.m0 = end_mi - self.M + 1
        mi = self.m0 + np.arange(self.M + 1, dtype=np.int64)
        starts = mi.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        self.mfirst = starts[:-1]
        self.mlast = starts[1:] - 1
        self.yyyymm = yyyymm_of_month_index(mi[:-1])
        self.wstart = int(self.mfirst[0])
        self.tables: dict[str, dict[str, object]] = {}
        self.planted: dict[str, list[tuple[int, int | None]]] = {k: [] for k in PLANTED_KINDS}
        self.stats: dict[str, object] = {}

    def rng(self, section: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(section.encode())])

    # ------------------------------------------------------------------ pipeline
    def build(self) -> DemoData:
        steps = [
            ("organisation", self._organisation),
            ("patients", self._patients),
            ("diagnoses", self._diagnoses),
            ("enrollment funnel", self._funnel),
            ("patient-months", self._grid),
            ("facility stays", self._stays),
            ("minutes", self._minutes),
            ("programs", self._programs),
            ("planted failures", self._plant),
            ("time entries", self._time_entries),
            ("claims", self._claims),
            ("remittances", self._remittances),
            ("consents and events", self._consents_and_events),
            ("care plans and visits", self._care_plans_and_visits),
        ]
        for name, step in steps:
            self._progress(name)
            step()
        return self

    # ------------------------------------------------------------------ organisation
    def _organisation(self) -> None:
        r = self.rng("organisation")
        P = self.P
        self.n_clinics = max(3, math.ceil(P / 5000))
        self.n_pcp = max(6, math.ceil(P / 250))
        self.n_spec = max(1, P // 10000)
        self.n_cm = max(8, math.ceil(P / 200))
        self.n_nonclinical = max(2, math.ceil(P / 5000))
        nc = self.n_clinics

        self.tables["practice"] = {"id": np.array([1]), "name": [V.PRACTICE_NAME], "tax_id": ["84-1234567"]}
        cids = np.arange(1, nc + 1)
        names = [
            V.CLINIC_NAMES[i % len(V.CLINIC_NAMES)] + ("" if i < len(V.CLINIC_NAMES) else f" {i + 1}")
            for i in range(nc)
        ]
        self.tables["clinic"] = {
            "id": cids,
            "practice_id": np.ones(nc, dtype=np.int64),
            "code": [f"CL{i:02d}" for i in cids],
            "name": names,
            "place_of_service": ["11"] * nc,
            "is_rhc_fqhc": np.zeros(nc, dtype=bool),
        }

        n_pr = self.n_pcp + self.n_spec
        self.pr_ids = np.arange(1, n_pr + 1)
        self.pcp_clinic = (np.arange(self.n_pcp) % nc) + 1
        self.spec_ids = np.arange(self.n_pcp + 1, n_pr + 1)
        pr_clinic = np.concatenate([self.pcp_clinic, (np.arange(self.n_spec) % nc) + 1])
        creds = [V.PCP_CREDENTIALS[i % len(V.PCP_CREDENTIALS)] for i in range(self.n_pcp)] + ["MD"] * self.n_spec
        self.pr_cred = creds
        npis: list[str] = []
        seen: set[str] = set()
        while len(npis) < n_pr:
            base = "1" + "".join(str(d) for d in r.integers(0, 10, 8))
            if base in seen:
                continue
            seen.add(base)
            npis.append(base + npi_check_digit(base))
        pr_first = [self._name(r, female) for female in (r.random(n_pr) < 0.5)]
        pr_last = [V.LAST_NAMES[i] for i in r.integers(0, len(V.LAST_NAMES), n_pr)]
        self.tables["practitioner"] = {
            "id": self.pr_ids,
            "npi": npis,
            "first_name": pr_first,
            "last_name": pr_last,
            "credential": creds,
            "clinic_id": pr_clinic,
            "active": np.ones(n_pr, dtype=bool),
        }

        # staff: care managers, non-clinical schedulers, then one row per practitioner (their own time)
        ncm, nnc = self.n_cm, self.n_nonclinical
        self.cm_ids = np.arange(1, ncm + 1)
        self.cm_clinic = (np.arange(ncm) % nc) + 1
        self.nc_ids = np.arange(ncm + 1, ncm + nnc + 1)
        self.prac_staff = np.zeros(n_pr + 1, dtype=np.int64)  # practitioner id -> staff id
        self.prac_staff[1:] = np.arange(ncm + nnc + 1, ncm + nnc + n_pr + 1)
        n_staff = ncm + nnc + n_pr
        s_first = [self._name(r, f) for f in (r.random(ncm + nnc) < 0.8)] + pr_first
        s_last = [V.LAST_NAMES[i] for i in r.integers(0, len(V.LAST_NAMES), ncm + nnc)] + pr_last
        s_cred = [V.CARE_MANAGER_CREDENTIALS[i % len(V.CARE_MANAGER_CREDENTIALS)] for i in range(ncm)]
        s_cred += ["none"] * nnc + creds
        self.tables["staff"] = {
            "id": np.arange(1, n_staff + 1),
            "external_id": [f"STF{i:05d}" for i in range(1, n_staff + 1)],
            "first_name": s_first,
            "last_name": s_last,
            "credential": s_cred,
            "is_clinical": np.array([True] * ncm + [False] * nnc + [True] * n_pr),
            "role": ["care_manager"] * ncm + ["scheduler"] * nnc + ["practitioner"] * n_pr,
            "practitioner_id": np.concatenate([np.full(ncm + nnc, np.nan), self.pr_ids.astype(float)]),
            "clinic_id": np.concatenate([self.cm_clinic, (np.arange(nnc) % nc) + 1, pr_clinic]),
            "active": np.ones(n_staff, dtype=bool),
            # care managers' FTE (no random draw, so every other table stays byte-identical): mostly full
            # time, every fourth one at 0.8 and every seventh at 0.5; nobody else has a caseload
            "fte": np.concatenate(
                [
                    np.where(np.arange(ncm) % 7 == 6, 0.5, np.where(np.arange(ncm) % 4 == 3, 0.8, 1.0)),
                    np.full(nnc + n_pr, np.nan),
                ]
            ),
        }

    @staticmethod
    def _name(r: np.random.Generator, female: bool) -> str:
        pool = V.FEMALE_FIRST if female else V.MALE_FIRST
        return pool[int(r.integers(0, len(pool)))]

    def _pick_in_clinic(self, r, clinics: np.ndarray, member_clinic: np.ndarray, member_ids: np.ndarray):
        """For each clinic value, a uniformly chosen member of that clinic (vectorised)."""
        order = np.argsort(member_clinic, kind="stable")
        sorted_clinic = member_clinic[order]
        start = np.searchsorted(sorted_clinic, clinics, "left")
        count = np.searchsorted(sorted_clinic, clinics, "right") - start
        pick = start + (r.random(len(clinics)) * count).astype(np.int64)
        return member_ids[order][pick]

    # ------------------------------------------------------------------ patients
    def _patients(self) -> None:
        r = self.rng("patients")
        P = self.P
        self.pid = np.arange(1, P + 1, dtype=np.int64)
        female = r.random(P) < 0.56
        self.female = female
        under65 = r.random(P) < 0.12
        age = np.where(under65, r.integers(45, 65, P), 65 + np.floor(r.beta(1.6, 3.2, P) * 33).astype(np.int64))
        birth = self.asof - np.floor(age * 365.25).astype(np.int64) - r.integers(0, 365, P)
        u = r.random(P)
        payer_old = np.searchsorted(np.cumsum([0.76, 0.17, 0.03, 0.04]), u, "right")
        payer_young = np.searchsorted(np.cumsum([0.15, 0.05, 0.35, 0.45]), u, "right")
        self.payer_idx = np.minimum(np.where(under65, payer_young, payer_old), 3)
        qmb_p = np.array([0.11, 0.06, 0.45, 0.0])[self.payer_idx]
        self.is_qmb = r.random(P) < qmb_p
        w = 1.0 / (1.0 + 0.3 * np.arange(self.n_clinics))
        self.clinic = 1 + np.searchsorted(np.cumsum(w / w.sum()), r.random(P), "right").clip(0, self.n_clinics - 1)
        self.pcp = self._pick_in_clinic(r, self.clinic, self.pcp_clinic, np.arange(1, self.n_pcp + 1))
        self.cm = self._pick_in_clinic(r, self.clinic, self.cm_clinic, self.cm_ids)
        window_days = self.asof - self.wstart + 1
        new = r.random(P) < 0.15
        self.first_seen = np.where(
            new,
            self.wstart + (r.random(P) * max(1, window_days - 45)).astype(np.int64),
            self.wstart - r.integers(60, 3650, P),
        )
        self.birth = birth
        self.deceased = np.full(P, NULL_DAY, dtype=np.int64)
        fn_f = np.array(V.FEMALE_FIRST, dtype=object)[r.integers(0, len(V.FEMALE_FIRST), P)]
        fn_m = np.array(V.MALE_FIRST, dtype=object)[r.integers(0, len(V.MALE_FIRST), P)]
        self.first_name = np.where(female, fn_f, fn_m)
        self.last_name = np.array(V.LAST_NAMES, dtype=object)[r.integers(0, len(V.LAST_NAMES), P)]
        ph = r.integers(0, 10_000_000, P)
        self.phone = [f"555-{200 + (x // 10000) % 800:03d}-{x % 10000:04d}" for x in ph.tolist()]

    # ------------------------------------------------------------------ diagnoses
    def _diagnoses(self) -> None:
        r = self.rng("diagnoses")
        P = self.P
        conds = V.CHRONIC_CONDITIONS
        C = len(conds)
        eligible = r.random(P) < 0.70
        extra = np.minimum(r.geometric(0.45, P) - 1, 4)
        n_cond = np.where(eligible, 2 + extra, (r.random(P) < 0.6).astype(np.int64))
        self.eligible = n_cond >= 2
        weights = np.log(np.array([c[1] for c in conds]))
        keys = weights[None, :] - np.log(-np.log(r.random((P, C))))
        order = np.argsort(-keys, axis=1)
        take = np.arange(C)[None, :] < n_cond[:, None]
        d_pat = np.repeat(np.arange(P), n_cond)
        d_cond = order[take]
        code_lists = [c[2] for c in conds]
        pick = (r.random(len(d_cond)) * np.array([len(code_lists[c]) for c in d_cond])).astype(np.int64)
        d_code = np.array([code_lists[c][k] for c, k in zip(d_cond.tolist(), pick.tolist())], dtype=object)
        onset = np.minimum(self.first_seen[d_pat], self.wstart) - r.integers(30, 3650, len(d_pat))
        # acute problems, resolved
        n_acute = np.minimum(r.poisson(0.6, P), 3)
        a_pat = np.repeat(np.arange(P), n_acute)
        a_code = np.array(V.ACUTE_CODES, dtype=object)[r.integers(0, len(V.ACUTE_CODES), len(a_pat))]
        span = self.asof - 10 - (self.wstart - 400)
        a_onset = self.wstart - 400 + (r.random(len(a_pat)) * max(span, 1)).astype(np.int64)
        a_res = a_onset + r.integers(7, 46, len(a_pat))
        a_res = np.where(a_res > self.asof, NULL_DAY, a_res)
        pat = np.concatenate([d_pat, a_pat])
        order2 = np.lexsort((np.concatenate([onset, a_onset]), pat))
        n = len(pat)
        ids = np.arange(1, n + 1)
        self.tables["diagnosis"] = {
            "id": ids,
            "external_id": [f"DX{i:08d}" for i in ids.tolist()],
            "patient_id": self.pid[pat[order2]],
            "icd10": np.concatenate([d_code, a_code])[order2],
            "onset_date": to_dates(np.concatenate([onset, a_onset])[order2]),
            "resolved_date": to_dates(np.concatenate([np.full(len(d_pat), NULL_DAY), a_res])[order2]),
            "on_problem_list": np.ones(n, dtype=bool),
        }
        # claim-line diagnosis pointers: the patient's first four chronic codes
        first4: list[list[str]] = [[] for _ in range(P)]
        for p_, c_ in zip(d_pat.tolist(), d_code.tolist()):
            if len(first4[p_]) < 4:
                first4[p_].append(c_)
        self.icd_text = np.array([",".join(x) if x else None for x in first4], dtype=object)

    # ------------------------------------------------------------------ enrollment funnel
    def _funnel(self) -> None:
        r = self.rng("funnel")
        P, asof = self.P, self.asof
        window_days = asof - self.wstart + 1
        self.program_start = self.wstart - max(120, int(0.25 * window_days))
        H = asof - self.program_start
        u = r.random((P, 8))
        medicare = self.payer_idx <= 1
        identified = self.eligible & (u[:, 0] < np.where(medicare, 0.93, 0.25))
        ident = self.program_start + np.floor(H * r.beta(1.2, 2.4, P)).astype(np.int64)
        ident = np.maximum(ident, self.first_seen + 14)
        ident_ok = identified & (ident <= asof)
        outr = ident + r.integers(3, 31, P)
        outr_ok = ident_ok & (u[:, 1] < 0.95) & (outr <= asof)
        reach = outr + r.integers(1, 22, P)
        reached = u[:, 2] < 0.80
        reach_ok = outr_ok & reached & (reach <= asof)
        unreach = outr + r.integers(30, 61, P)
        unreach_ok = outr_ok & ~reached & (unreach <= asof)
        cons = reach + r.integers(0, 15, P)
        consenting = u[:, 3] < 0.70
        cons_ok = reach_ok & consenting & (cons <= asof)
        decl = reach + r.integers(0, 15, P)
        decl_ok = reach_ok & ~consenting & (decl <= asof)
        dr = [x[0] for x in V.DECLINE_REASONS]
        decl_reason = np.array(dr, dtype=object)[self._choice(r, [x[1] for x in V.DECLINE_REASONS], P)]
        lag = np.where(u[:, 4] < 0.8, 0, r.integers(1, 4, P))
        enr = cons + lag
        enr = np.where(month_index(enr) != month_index(cons), cons, enr)
        enr_ok = cons_ok & (u[:, 5] < 0.985) & (enr <= asof)
        dis = enr + np.maximum(20, np.floor(r.exponential(1 / 0.011, P) * 30.4).astype(np.int64))
        dis_ok = enr_ok & (dis <= asof)
        disr = [x[0] for x in V.DISENROLL_REASONS]
        dis_reason = np.array(disr, dtype=object)[self._choice(r, [x[1] for x in V.DISENROLL_REASONS], P)]
        inel_ok = ~self.eligible & (u[:, 6] < 0.05) & (ident <= asof - 7)
        inel = ident + r.integers(0, 8, P)

        self.ident, self.ident_ok = ident, ident_ok | inel_ok
        self.outr, self.outr_ok = outr, outr_ok
        self.reach, self.reach_ok = reach, reach_ok
        self.unreach, self.unreach_ok = unreach, unreach_ok
        self.cons, self.cons_ok = cons, cons_ok
        self.decl, self.decl_ok, self.decl_reason = decl, decl_ok, decl_reason
        self.enr, self.enr_ok = enr, enr_ok
        self.dis, self.dis_ok, self.dis_reason = dis, dis_ok, dis_reason
        self.inel, self.inel_ok = inel, inel_ok
        self.consent_method_written = u[:, 7] < 0.3
        deceased = dis_ok & (dis_reason == "deceased")
        self.deceased = np.where(deceased, dis, NULL_DAY)
        self.revoked = np.where(dis_ok & (dis_reason == "patient request"), dis, NULL_DAY)

    @staticmethod
    def _choice(r: np.random.Generator, weights, n: int) -> np.ndarray:
        w = np.asarray(weights, dtype=float)
        return np.searchsorted(np.cumsum(w / w.sum()), r.random(n), "right").clip(0, len(w) - 1)

    # ------------------------------------------------------------------ patient-month grid
    def _grid(self) -> None:
        """One row per enrolled patient and window month: the days CCM work may happen on."""
        enrolled = np.flatnonzero(self.enr_ok)
        start = self.enr[enrolled]
        end_excl = np.where(self.dis_ok[enrolled], self.dis[enrolled], BIG_DAY)
        last_day = np.minimum(end_excl - 1, self.asof)
        first_i = np.maximum(month_index(start) - self.m0, 0)
        last_i = np.minimum(month_index(np.minimum(last_day, self.mlast[-1])) - self.m0, self.M - 1)
        count = np.where((last_i >= first_i) & (start <= self.mlast[-1]), last_i - first_i + 1, 0)
        pm_p = np.repeat(enrolled, count)
        offs = np.arange(len(pm_p)) - np.repeat(np.cumsum(count) - count, count)
        pm_m = np.repeat(first_i, count) + offs
        self.pm_p = pm_p
        self.pm_m = pm_m
        self.pm_lo = np.maximum(self.mfirst[pm_m], self.enr[pm_p])
        self.pm_hi = np.minimum(self.mlast[pm_m], np.repeat(end_excl, count) - 1)
        self.pm_complete = self.mlast[pm_m] <= self.asof
        self.pm_month = self.yyyymm[pm_m]
        # where each patient's months start in the grid (patients are contiguous, in id order)
        self.pat_pm_start = np.full(self.P, -1, dtype=np.int64)
        self.pat_pm_count = np.zeros(self.P, dtype=np.int64)
        self.pat_pm_count[enrolled] = count
        firsts = np.cumsum(count) - count
        self.pat_pm_start[enrolled] = np.where(count > 0, firsts, -1)
        self.pm_prac = self.pcp[pm_p].copy()

    # ------------------------------------------------------------------ facility stays
    def _stays(self) -> None:
        r = self.rng("stays")
        P, M = self.P, self.M
        hit = r.random((P, M)) < 0.015
        sp, sm = np.nonzero(hit)
        ndays = self.mlast[sm] - self.mfirst[sm] + 1
        admit = self.mfirst[sm] + (r.random(len(sp)) * ndays).astype(np.int64)
        snf = r.random(len(sp)) < 0.25
        los = np.where(snf, r.integers(5, 15, len(sp)), r.integers(2, 11, len(sp)))
        keep = admit <= self.asof
        sp, admit, los, snf = sp[keep], admit[keep], los[keep], snf[keep]
        order = np.lexsort((admit, sp))
        sp, admit, los, snf = sp[order], admit[order], los[order], snf[order]
        disc = admit + los
        overlap = np.zeros(len(sp), dtype=bool)
        overlap[1:] = (sp[1:] == sp[:-1]) & (admit[1:] <= disc[:-1])
        keep = ~overlap
        self.st_p, self.st_admit, self.st_disc, self.st_snf = sp[keep], admit[keep], disc[keep], snf[keep]
        self.st_planted = np.zeros(len(self.st_p), dtype=bool)
        # stay intervals clipped to each patient-month (sorted, invalid slots = BIG_DAY)
        npm = len(self.pm_p)
        ia = np.full((npm, SLOTS), BIG_DAY, dtype=np.int64)
        ib = np.full((npm, SLOTS), BIG_DAY - 1, dtype=np.int64)
        filled = np.zeros(npm, dtype=np.int64)
        s0 = np.searchsorted(self.st_p, self.pm_p, "left")
        s1 = np.searchsorted(self.st_p, self.pm_p, "right")
        eff_disc = np.where(self.st_disc > self.asof, BIG_DAY, self.st_disc)  # still in at as_of
        overflow = np.zeros(npm, dtype=bool)
        for k in range(int((s1 - s0).max(initial=0))):
            idx = s0 + k
            valid = idx < s1
            idx = np.where(valid, idx, 0)
            a = np.maximum(self.st_admit[idx], self.pm_lo)
            b = np.minimum(eff_disc[idx], self.pm_hi)
            ok = valid & (a <= b) if len(self.st_p) else np.zeros(npm, dtype=bool)
            room = filled < SLOTS - 1
            overflow |= ok & ~room
            put = ok & room
            rows = np.flatnonzero(put)
            ia[rows, filled[rows]] = a[rows]
            ib[rows, filled[rows]] = b[rows]
            filled[rows] += 1
        self.pm_ia, self.pm_ib, self.pm_nslots = ia, ib, filled
        self.pm_avail = (self.pm_hi - self.pm_lo + 1) - np.where(ia < BIG_DAY, ib - ia + 1, 0).sum(axis=1)
        self.pm_avail[overflow] = 0

    # ------------------------------------------------------------------ minutes per patient-month
    def _minutes(self) -> None:
        r = self.rng("minutes")
        n = len(self.pm_p)
        bucket = self._choice(r, MINUTE_BUCKETS, n)
        lo_hi = np.array([(0, 0), (1, 14), (15, 19), (20, 39), (40, 59), (60, 104)])
        T = np.zeros(n, dtype=np.int64)
        b = r.beta(1.1, 2.3, n)
        for k in range(6):
            sel = bucket == k
            lo, hi = lo_hi[k]
            if k in (1, 2):
                T[sel] = r.integers(lo, hi + 1, sel.sum())
            elif k >= 3:
                T[sel] = lo + np.floor(b[sel] * (hi - lo + 0.999)).astype(np.int64)
        # complex track: ~5% of the 60+ months have moderate/high MDM and run 90-119 minutes
        cx = (bucket == 5) & (r.random(n) < 0.05)
        T[cx] = r.integers(90, 120, cx.sum())
        T[self.pm_avail <= 0] = 0
        cx &= T > 0
        k = np.zeros(n, dtype=np.int64)
        k = np.where(T >= 1, 1 + (r.random(n) < 0.4), k)
        k = np.where(T >= 15, r.integers(2, 5, n), k)
        k = np.where(T >= 40, r.integers(3, 6, n), k)
        k = np.where(T >= 60, r.integers(4, 7, n), k)
        k = np.minimum(k, T)
        w = r.gamma(2.0, 1.0, (n, 6)) * (np.arange(6)[None, :] < k[:, None])
        wsum = np.maximum(w.sum(axis=1, keepdims=True), 1e-9)
        parts = np.where(
            np.arange(6)[None, :] < k[:, None], 1 + np.floor((T - k)[:, None] * w / wsum).astype(np.int64), 0
        )
        parts[:, 0] += T - parts.sum(axis=1)
        # the billing practitioner's own minutes: one short entry in ~10% of months (never 30+, so
        # the practitioner-time track 99491 is never the better code)
        prac = (k >= 2) & ~cx & (r.random(n) < 0.10)
        self.pm_prac_slot = np.where(prac, k - 1, -1)
        rows = np.flatnonzero(prac)
        parts[rows, k[rows] - 1] = np.minimum(parts[rows, k[rows] - 1], 15)
        self.pm_parts = parts
        self.pm_k = k
        self.pm_complex = cx
        self.pm_T = parts.sum(axis=1)
        self.pm_submit = self.mlast[self.pm_m] + r.integers(2, 11, n)
        self._refresh_billable()

    def _refresh_billable(self) -> None:
        self.pm_billable = self.pm_complete & (self.pm_submit <= self.asof) & (self.pm_T >= 20)

    # ------------------------------------------------------------------ RPM, PCM, practitioner changes
    def _programs(self) -> None:
        r = self.rng("programs")
        P = self.P
        ever = self.enr_ok & (self.pat_pm_count > 0)
        self.rpm = ever & (r.random(P) < 0.10)
        self.pm_rpm = self.rpm[self.pm_p]
        self.pcm_patient = ever & (r.random(P) < 0.03)
        self.pcm_spec = self.spec_ids[(r.random(P) * len(self.spec_ids)).astype(np.int64)]
        self.pm_pcm = self.pcm_patient[self.pm_p] & self.pm_billable & (r.random(len(self.pm_p)) < 0.6)
        has_complex = np.zeros(P, dtype=bool)
        has_complex[self.pm_p[self.pm_complex]] = True
        self.has_complex = has_complex
        self.change_day = np.full(P, NULL_DAY, dtype=np.int64)
        self.change_new = np.zeros(P, dtype=np.int64)
        self.change_reconsent = np.zeros(P, dtype=bool)

    def _change_practitioner(self, r, p: int, pm: int, reconsent: bool) -> None:
        """From month ``pm`` on, patient ``p`` is billed by another practitioner of the same clinic."""
        same = np.flatnonzero(self.pcp_clinic == self.clinic[p]) + 1
        others = same[same != self.pcp[p]]
        new = int(others[int(r.integers(0, len(others)))])
        self.change_day[p] = self.mfirst[self.pm_m[pm]]
        self.change_new[p] = new
        self.change_reconsent[p] = reconsent
        end = self.pat_pm_start[p] + self.pat_pm_count[p]
        self.pm_prac[pm:end] = new

    # ------------------------------------------------------------------ planted failures
    def _plant(self) -> None:
        r = self.rng("planted")
        npm = len(self.pm_p)
        billable = self.pm_billable
        pat_billable = np.zeros(self.P, dtype=bool)
        pat_billable[self.pm_p[billable]] = True
        clean_pat = pat_billable & ~self.rpm & ~self.pcm_patient & ~self.has_complex
        cand = np.flatnonzero(clean_pat)
        cand = cand[r.permutation(len(cand))]
        want = max(MIN_PER_KIND, round(PATIENT_FAILURE_RATE * len(cand)))
        used = np.zeros(self.P, dtype=bool)
        self.pat_flaw: dict[str, np.ndarray] = {}
        self.pm_flaw: dict[str, np.ndarray] = {}

        def first_billable(p: int) -> int | None:
            s, c = self.pat_pm_start[p], self.pat_pm_count[p]
            hits = np.flatnonzero(billable[s : s + c])
            return int(s + hits[0]) if len(hits) else None

        def record(kind: str, p: int, pm: int | None) -> None:
            self.planted[kind].append((int(self.pid[p]), int(self.pm_month[pm]) if pm is not None else None))

        # late consent: CCM minutes logged in the days before the consent date, in a billed consent month
        self.late_entries: list[tuple[int, int, list[int]]] = []
        chosen = []
        for p in cand.tolist():
            if len(chosen) >= want:
                break
            s = self.pat_pm_start[p]
            if used[p] or s < 0 or not billable[s] or self.cons[p] < self.wstart:
                continue
            if month_index(np.array([self.cons[p]]))[0] != self.m0 + self.pm_m[s]:
                continue
            free = [
                d
                for d in range(int(self.cons[p]) - 1, int(self.mfirst[self.pm_m[s]]) - 1, -1)
                if not self._in_stay(p, d)
            ]
            if len(free) < 2:
                continue
            days = sorted(free[:2])
            chosen.append(p)
            used[p] = True
            self.late_entries.append((p, s, days))
            record("late_consent", p, s)
        self.pat_flaw["late_consent"] = np.array(chosen, dtype=np.int64)

        # practitioner change without a new consent: a month billed by the old practitioner, then the first
        # billed month under the new one
        chosen = []
        for p in cand.tolist():
            if len(chosen) >= want:
                break
            s, c = self.pat_pm_start[p], self.pat_pm_count[p]
            if used[p] or c < 2:
                continue
            hits = np.flatnonzero(billable[s : s + c])
            if len(hits) < 2:
                continue
            pm = int(s + hits[1])
            self._change_practitioner(r, p, pm, reconsent=False)
            chosen.append(p)
            used[p] = True
            record("practitioner_change_no_reconsent", p, pm)
        self.pat_flaw["practitioner_change_no_reconsent"] = np.array(chosen, dtype=np.int64)

        for kind in (
            "missing_consent",
            "undated_consent",
            "incomplete_consent",
            "no_initiating_visit",
            "no_care_plan",
            "care_plan_not_shared",
        ):
            chosen = [p for p in cand.tolist() if not used[p]][:want]
            for p in chosen:
                used[p] = True
                record(kind, p, first_billable(p))
            self.pat_flaw[kind] = np.array(chosen, dtype=np.int64)
        self.flawed_patient = used.copy()

        # ordinary practitioner changes, with the new consent they need
        for p in cand.tolist():
            if used[p] or r.random() >= 0.03:
                continue
            s, c = self.pat_pm_start[p], self.pat_pm_count[p]
            if c >= 2:
                self._change_practitioner(r, p, int(s + 1 + r.integers(0, c - 1)), reconsent=True)

        # month-level failures on billed months of patients without a patient-level failure
        pool = billable & ~self.flawed_patient[self.pm_p] & ~self.pm_complex
        pool_idx = np.flatnonzero(pool)
        pool_idx = pool_idx[r.permutation(len(pool_idx))]
        taken = np.zeros(npm, dtype=bool)
        want_m = max(MIN_PER_KIND, round(MONTH_FAILURE_RATE * len(pool_idx)))
        T = self.pm_T
        rules = {
            "addon_over_cap": T >= 60,
            "under_billed": (T >= 40) & (T <= 79),
            "addon_without_base": T >= 40,
            "over_billed": (T >= 20) & (T <= 39),
            "inpatient_minutes": self.pm_avail >= 12,
            "ccm_with_pcm_same_practitioner": ~self.pm_pcm,
        }
        self.planted_stays: dict[int, tuple[int, int]] = {}
        for kind in (
            "addon_over_cap",
            "under_billed",
            "addon_without_base",
            "over_billed",
            "inpatient_minutes",
            "ccm_with_pcm_same_practitioner",
            "nonclinical_minutes",
            "vague_notes",
            "backdated_batch",
            "other_program_overlap",
            "duplicate_ccm_other_practitioner",
        ):
            ok = rules.get(kind)
            chosen = []
            for pm in pool_idx.tolist():
                if len(chosen) >= want_m:
                    break
                if taken[pm] or (ok is not None and not ok[pm]):
                    continue
                if kind == "inpatient_minutes" and not self._plant_stay(r, pm):
                    continue
                taken[pm] = True
                chosen.append(pm)
                record(kind, int(self.pm_p[pm]), pm)
            self.pm_flaw[kind] = np.array(chosen, dtype=np.int64)

        # backdated batches: round-number durations (rounded up to tens, so the month stays billable)
        bd = self.pm_flaw["backdated_batch"]
        if len(bd):
            parts = self.pm_parts[bd]
            self.pm_parts[bd] = np.where(parts > 0, np.ceil(parts / 10.0).astype(np.int64) * 10, 0)
            self.pm_T = self.pm_parts.sum(axis=1)
            self._refresh_billable()
        for kind in self.planted:
            self.planted[kind].sort(key=lambda t: (t[0], t[1] if t[1] is not None else 0))

    def _in_stay(self, p: int, d: int) -> bool:
        s0 = np.searchsorted(self.st_p, p, "left")
        s1 = np.searchsorted(self.st_p, p, "right")
        for i in range(s0, s1):
            if self.st_admit[i] <= d <= self.st_disc[i]:
                return True
        return False

    def _plant_stay(self, r, pm: int) -> bool:
        """Add a 3-day inpatient stay inside the month, clear of other stays; its days get CCM minutes."""
        lo, hi = int(self.pm_lo[pm]), int(self.pm_hi[pm])
        p = int(self.pm_p[pm])
        if self.pm_nslots[pm] >= SLOTS:
            return False
        starts = list(range(lo + 1, hi - 3))
        r.shuffle(starts)
        for a in starts:
            b = a + 2
            if any(self._in_stay(p, d) for d in range(a - 1, b + 2)):
                continue
            slots = [(int(x), int(y)) for x, y in zip(self.pm_ia[pm], self.pm_ib[pm]) if x < BIG_DAY]
            slots = sorted(slots + [(a, b)])
            self.pm_ia[pm] = BIG_DAY
            self.pm_ib[pm] = BIG_DAY - 1
            for j, (x, y) in enumerate(slots):
                self.pm_ia[pm, j], self.pm_ib[pm, j] = x, y
            self.pm_nslots[pm] = len(slots)
            self.pm_avail[pm] -= 3
            self.planted_stays[pm] = (a, b)
            return True
        return False

    # ------------------------------------------------------------------ time entries
    def _place_days(self, r, e_pm: np.ndarray) -> np.ndarray:
        """A day per entry inside its patient-month, never on a stay day, weekdays preferred."""
        n = len(e_pm)
        lo = self.pm_lo[e_pm]
        nav = np.maximum(self.pm_avail[e_pm], 1)
        ia, ib = self.pm_ia[e_pm], self.pm_ib[e_pm]
        chosen = None
        need = None
        for _ in range(3):
            d = lo + np.minimum((r.random(n) * nav).astype(np.int64), nav - 1)
            for s in range(SLOTS):
                d = np.where(d >= ia[:, s], d + (ib[:, s] - ia[:, s] + 1), d)
            if chosen is None:
                chosen, need = d, weekend(d)
            else:
                take = need & ~weekend(d)
                chosen = np.where(take, d, chosen)
                need &= ~take
        return chosen

    def _time_entries(self) -> None:
        r = self.rng("time entries")
        k = self.pm_k
        e_pm = np.repeat(np.arange(len(k)), k)
        e_j = np.arange(len(e_pm)) - np.repeat(np.cumsum(k) - k, k)
        e_min = self.pm_parts[e_pm, e_j]
        e_day = self._place_days(r, e_pm)
        order = np.lexsort((e_j, e_day, e_pm))
        e_pm, e_j, e_min, e_day = e_pm[order], e_j[order], e_min[order], e_day[order]
        n = len(e_pm)
        # sequential, non-overlapping times per patient-day from 08:00-10:00; ends by 14:30 at most
        first = np.ones(n, dtype=bool)
        first[1:] = (e_pm[1:] != e_pm[:-1]) | (e_day[1:] != e_day[:-1])
        prev_min = np.concatenate([[0], e_min[:-1]])
        inc = np.where(first, 480 + r.integers(0, 121, n), prev_min + r.integers(5, 26, n))
        c = np.cumsum(inc)
        gid = np.cumsum(first) - 1
        fidx = np.flatnonzero(first)
        start_min = c - (c[fidx] - inc[fidx])[gid]
        is_prac = self.pm_prac_slot[e_pm] == e_j
        p = self.pm_p[e_pm]
        other_cm = self._pick_in_clinic(r, self.clinic[p], self.cm_clinic, self.cm_ids)
        staff = np.where(r.random(n) < 0.85, self.cm[p], other_cm)
        staff = np.where(is_prac, self.prac_staff[self.pm_prac[e_pm]], staff)
        act = self._choice(r, V.ACTIVITY_WEIGHTS, n)
        act = np.where(is_prac, V.ACTIVITIES.index("care_plan_update"), act)
        is_first_pm = e_pm == self.pat_pm_start[p]
        first_in_pm = np.ones(n, dtype=bool)
        first_in_pm[1:] = e_pm[1:] != e_pm[:-1]
        first_ever = is_first_pm & first_in_pm & (self.enr[p] >= self.wstart)
        act = np.where(first_ever, V.ACTIVITIES.index("care_plan_update"), act)
        notes = self._notes_for(r, act)
        # planted: vague notes and backdated batches rewrite their months' entries
        method = np.full(n, "realtime", dtype=object)
        entered = e_day * 1440 + start_min + e_min + r.integers(1, 91, n)
        vague = np.isin(e_pm, self.pm_flaw["vague_notes"])
        notes[vague] = np.array(V.VAGUE_NOTES, dtype=object)[r.integers(0, len(V.VAGUE_NOTES), vague.sum())]
        batch = np.isin(e_pm, self.pm_flaw["backdated_batch"])
        if batch.any():
            last_bd = self.mlast[self.pm_m[e_pm[batch]]]
            last_bd = last_bd - np.where((last_bd + 3) % 7 == 5, 1, np.where((last_bd + 3) % 7 == 6, 2, 0))
            last_bd = np.maximum(last_bd, e_day[batch])
            rank = np.arange(batch.sum())
            entered[batch] = last_bd * 1440 + 17 * 60 + rank % 40
            method[batch] = "batch"
        # practitioner entries are the billing practitioner's own time
        rows = {
            "patient_id": self.pid[p],
            "staff_id": staff,
            "program": np.full(n, "CCM", dtype=object),
            "day": e_day,
            "start": start_min,
            "minutes": e_min,
            "activity": np.array(V.ACTIVITIES)[act],
            "note": notes,
            "practitioner_id": self.pm_prac[e_pm],
            "entry_method": method,
            "entered": entered,
            "interactive": np.isin(act, [V.ACTIVITIES.index(a) for a in V.INTERACTIVE_ACTIVITIES]),
        }
        keep = e_day <= self.asof
        parts = [{k_: v[keep] for k_, v in rows.items()}]
        # threshold date per patient-month (clean entries are all counted minutes)
        cum = np.cumsum(e_min)
        pm_first = np.ones(n, dtype=bool)
        pm_first[1:] = e_pm[1:] != e_pm[:-1]
        g = np.cumsum(pm_first) - 1
        f_idx = np.flatnonzero(pm_first)
        within = cum - (cum[f_idx] - e_min[f_idx])[g]
        reached = within >= 20
        self.pm_threshold = np.full(len(self.pm_p), NULL_DAY, dtype=np.int64)
        hit_rows = np.flatnonzero(reached)
        if len(hit_rows):
            first_hit = np.ones(len(hit_rows), dtype=bool)
            first_hit[1:] = e_pm[hit_rows[1:]] != e_pm[hit_rows[:-1]]
            self.pm_threshold[e_pm[hit_rows[first_hit]]] = e_day[hit_rows[first_hit]]

        parts += self._rpm_entries(r)
        parts += self._pcm_entries(r)
        parts += self._planted_entries(r)
        cols = {k_: np.concatenate([part[k_] for part in parts]) for k_ in parts[0]}
        order = np.lexsort((cols["start"], cols["patient_id"], cols["day"]))
        cols = {k_: v[order] for k_, v in cols.items()}
        n = len(order)
        ids = np.arange(1, n + 1)
        started = cols["day"] * 1440 + cols["start"]
        self.tables["time_entry"] = {
            "id": ids,
            "external_id": [f"TE{i:09d}" for i in ids.tolist()],
            "patient_id": cols["patient_id"],
            "staff_id": cols["staff_id"],
            "program": cols["program"],
            "service_date": to_dates(cols["day"]),
            "service_month": yyyymm_of_month_index(month_index(cols["day"])),
            "started_at": started.astype("datetime64[m]"),
            "ended_at": (started + cols["minutes"]).astype("datetime64[m]"),
            "minutes": cols["minutes"],
            "activity": cols["activity"],
            "note": cols["note"],
            "practitioner_id": cols["practitioner_id"],
            "entry_method": cols["entry_method"],
            "entered_at": cols["entered"].astype("datetime64[m]"),
            "interactive": cols["interactive"],
        }

    def _notes_for(self, r, act: np.ndarray) -> np.ndarray:
        """Specific clinical notes, drawn from a fixed pool per activity (fast at a million rows)."""
        out = np.empty(len(act), dtype=object)
        pr = self.rng("note pool")
        for a_i, name in enumerate(V.ACTIVITIES):
            pool = self._note_pool(pr, V.NOTE_TEMPLATES[name], 300)
            sel = act == a_i
            out[sel] = pool[r.integers(0, len(pool), sel.sum())]
        return out

    @staticmethod
    def _note_pool(r, templates, size: int) -> np.ndarray:
        out = []
        for _ in range(size):
            t = templates[int(r.integers(0, len(templates)))]
            fills = {k: v[int(r.integers(0, len(v)))] for k, v in V.FILLS.items()}
            out.append(t.format(**fills))
        return np.array(out, dtype=object)

    def _entries_block(
        self, r, e_pm, minutes, start_min, staff, program, activity, notes, counts_prac, interactive, days=None
    ) -> dict[str, np.ndarray]:
        n = len(e_pm)
        day = self._place_days(r, e_pm) if days is None else days
        return {
            "patient_id": self.pid[self.pm_p[e_pm]],
            "staff_id": staff,
            "program": np.full(n, program, dtype=object),
            "day": day,
            "start": start_min,
            "minutes": minutes,
            "activity": np.full(n, activity, dtype=object) if isinstance(activity, str) else activity,
            "note": notes,
            "practitioner_id": counts_prac,
            "entry_method": np.full(n, "realtime", dtype=object),
            "entered": day * 1440 + start_min + minutes + r.integers(1, 61, n),
            "interactive": interactive,
        }

    def _rpm_entries(self, r) -> list[dict[str, np.ndarray]]:
        """RPM treatment-management time, 16:00-17:15: never the same minutes as CCM (09:00-14:30)."""
        pms = np.flatnonzero(self.pm_rpm & (self.pm_avail > 0))
        cnt = r.integers(2, 5, len(pms))
        e_pm = np.repeat(pms, cnt)
        j = np.arange(len(e_pm)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        n = len(e_pm)
        minutes = r.integers(5, 16, n)
        start = 16 * 60 + 20 * j + r.integers(0, 5, n)
        notes = self._note_pool(self.rng("rpm notes"), V.RPM_NOTES, 100)[r.integers(0, 100, n)]
        block = self._entries_block(
            r,
            e_pm,
            minutes,
            start,
            self.cm[self.pm_p[e_pm]],
            "RPM",
            "rpm_review",
            notes,
            self.pm_prac[e_pm],
            r.random(n) < 0.5,
        )
        keep = block["day"] <= self.asof
        return [{k: v[keep] for k, v in block.items()}]

    def _pcm_entries(self, r) -> list[dict[str, np.ndarray]]:
        """Principal care management time by a specialist (legitimate) or by the CCM practitioner (planted)."""
        blocks = []
        spec_pm = np.flatnonzero(self.pm_pcm)
        same_pm = self.pm_flaw["ccm_with_pcm_same_practitioner"]
        for pms, prac in ((spec_pm, self.pcm_spec[self.pm_p[spec_pm]]), (same_pm, self.pm_prac[same_pm])):
            if not len(pms):
                continue
            e_pm = np.repeat(pms, 2)
            prac_e = np.repeat(prac, 2)
            j = np.tile([0, 1], len(pms))
            total = np.repeat(r.integers(30, 45, len(pms)), 2)
            minutes = np.where(j == 0, total // 2, total - total // 2)
            start = 17 * 60 + 30 + 25 * j
            notes = self._note_pool(self.rng("pcm notes"), V.PCM_NOTES, 60)[r.integers(0, 60, len(e_pm))]
            blocks.append(
                self._entries_block(
                    r,
                    e_pm,
                    minutes,
                    start,
                    self.prac_staff[prac_e],
                    "PCM",
                    "care_plan_update",
                    notes,
                    prac_e,
                    np.ones(len(e_pm), dtype=bool),
                )
            )
        return blocks

    def _planted_entries(self, r) -> list[dict[str, np.ndarray]]:
        """Extra entries that must not count: non-clinical, inpatient, other-program overlap, pre-consent."""
        rows: dict[str, list] = {
            k: []
            for k in (
                "patient_id",
                "staff_id",
                "program",
                "day",
                "start",
                "minutes",
                "activity",
                "note",
                "practitioner_id",
                "entry_method",
                "entered",
                "interactive",
            )
        }
        te_days = {}

        def add(p, staff, program, day, start, minutes, activity, note, prac, interactive=False):
            rows["patient_id"].append(int(self.pid[p]))
            rows["staff_id"].append(int(staff))
            rows["program"].append(program)
            rows["day"].append(int(day))
            rows["start"].append(int(start))
            rows["minutes"].append(int(minutes))
            rows["activity"].append(activity)
            rows["note"].append(note)
            rows["practitioner_id"].append(int(prac))
            rows["entry_method"].append("realtime")
            rows["entered"].append(int(day) * 1440 + int(start) + int(minutes) + int(r.integers(1, 61)))
            rows["interactive"].append(bool(interactive))

        fill = self.rng("planted notes")
        nonclin_pool = self._note_pool(fill, V.NONCLINICAL_NOTES, 30)
        inpatient_pool = list(V.INPATIENT_NOTES)
        rpm_pool = self._note_pool(fill, V.RPM_NOTES, 30)
        ccm_pool = self._note_pool(fill, V.NOTE_TEMPLATES["coordination"], 30)

        def a_day(pm):
            d = self._place_days(r, np.array([pm]))[0]
            te_days[pm] = d
            return d

        for pm in self.pm_flaw["nonclinical_minutes"].tolist():
            p = self.pm_p[pm]
            staff = self.nc_ids[int(r.integers(0, len(self.nc_ids)))]
            add(
                p,
                staff,
                "CCM",
                a_day(pm),
                15 * 60 + 30,
                r.integers(5, 16),
                "coordination",
                nonclin_pool[int(r.integers(0, len(nonclin_pool)))],
                self.pm_prac[pm],
            )
        for pm in self.pm_flaw["inpatient_minutes"].tolist():
            p = self.pm_p[pm]
            a, b = self.planted_stays[pm]
            for i, d in enumerate(range(a, a + int(r.integers(1, 3)))):
                add(
                    p,
                    self.cm[p],
                    "CCM",
                    d,
                    11 * 60 + 30 * i,
                    r.integers(10, 26),
                    "coordination",
                    inpatient_pool[int(r.integers(0, len(inpatient_pool)))],
                    self.pm_prac[pm],
                )
        for pm in self.pm_flaw["other_program_overlap"].tolist():
            p = self.pm_p[pm]
            d = a_day(pm)
            m = int(r.integers(10, 21))
            add(
                p,
                self.cm[p],
                "CCM",
                d,
                15 * 60,
                m,
                "phone_call",
                ccm_pool[int(r.integers(0, 30))],
                self.pm_prac[pm],
                True,
            )
            add(
                p,
                self.cm[p],
                "RPM",
                d,
                15 * 60,
                m,
                "rpm_review",
                rpm_pool[int(r.integers(0, 30))],
                self.pm_prac[pm],
                True,
            )
        for p, pm, days in self.late_entries:
            for d in days:
                add(
                    p,
                    self.cm[p],
                    "CCM",
                    d,
                    10 * 60,
                    r.integers(10, 21),
                    "phone_call",
                    ccm_pool[int(r.integers(0, 30))],
                    self.pm_prac[pm],
                    True,
                )
        out = {
            k: np.array(v, dtype=object if k in ("program", "activity", "note", "entry_method") else None)
            for k, v in rows.items()
        }
        for k in ("patient_id", "staff_id", "day", "start", "minutes", "practitioner_id", "entered"):
            out[k] = np.asarray(out[k], dtype=np.int64).reshape(-1)
        out["interactive"] = np.asarray(out["interactive"], dtype=bool).reshape(-1)
        for k in ("program", "activity", "note", "entry_method"):
            out[k] = np.asarray(out[k], dtype=object).reshape(-1)
        return [out] if len(out["day"]) else []

    # ------------------------------------------------------------------ claims
    def _claims(self) -> None:
        r = self.rng("claims")
        bill = np.flatnonzero(self.pm_billable)
        T = self.pm_T[bill]
        cx = self.pm_complex[bill] & (T >= 90)
        addon = np.minimum(2, np.maximum(T - 20, 0) // 20)
        has_base = np.ones(len(bill), dtype=bool)
        flaw = {k: np.isin(bill, v) for k, v in self.pm_flaw.items()}
        addon = np.where(flaw["under_billed"], 0, addon)
        addon = np.where(flaw["over_billed"], 1, addon)
        addon = np.where(flaw["addon_over_cap"], 3, addon)
        has_base &= ~flaw["addon_without_base"]
        end = self.mlast[self.pm_m[bill]]
        use_threshold = (addon == 0) & ~cx & (r.random(len(bill)) < 0.4) & (self.pm_threshold[bill] != NULL_DAY)
        dos = np.where(use_threshold, self.pm_threshold[bill], end)

        c_pm, c_kind, c_prac, c_submit = [], [], [], []
        l_claim, l_code, l_units, l_dos = [], [], [], []
        n0 = 0

        def add_claims(pms, kind, prac, submit, lines):
            nonlocal n0
            n = len(pms)
            c_pm.append(pms)
            c_kind.append(np.full(n, kind, dtype=object))
            c_prac.append(prac)
            c_submit.append(submit)
            for code, units, mask, ldos in lines:
                idx = np.flatnonzero(mask)
                l_claim.append(n0 + idx)
                l_code.append(np.full(len(idx), code, dtype=object))
                l_units.append(np.asarray(units)[idx] if np.ndim(units) else np.full(len(idx), units))
                l_dos.append(np.asarray(ldos)[idx])
            n0 += n

        add_claims(
            bill,
            "ccm",
            self.pm_prac[bill],
            self.pm_submit[bill],
            [
                ("99487", 1, cx, dos),
                ("99489", 1, cx, dos),
                ("99490", 1, ~cx & has_base, dos),
                ("99439", addon, ~cx & (addon > 0), dos),
            ],
        )
        # exact duplicate resubmissions (denied OA-18, kept out of the denial rate)
        clean = ~np.isin(bill, np.concatenate(list(self.pm_flaw.values()))) & ~cx
        dsub = self.pm_submit[bill] + r.integers(20, 36, len(bill))
        dup_pool = np.flatnonzero(clean & (dsub <= self.asof))
        n_dup = min(len(dup_pool), max(MIN_PER_KIND, round(DUPLICATE_RESUBMIT_RATE * len(bill))))
        di = np.sort(dup_pool[r.permutation(len(dup_pool))[:n_dup]])
        self.stats["duplicate_resubmissions"] = sorted(
            (int(self.pid[self.pm_p[pm]]), int(self.pm_month[pm])) for pm in bill[di].tolist()
        )
        add_claims(
            bill[di],
            "dup_exact",
            self.pm_prac[bill[di]],
            dsub[di],
            [("99490", 1, np.ones(len(di), bool), dos[di]), ("99439", addon[di], addon[di] > 0, dos[di])],
        )
        # another practitioner bills CCM for the same patient-month (planted)
        op = self.pm_flaw["duplicate_ccm_other_practitioner"]
        other = np.array(
            [self._other_pcp(r, int(self.pm_p[pm]), int(self.pm_prac[pm])) for pm in op.tolist()], dtype=np.int64
        )
        osub = self.pm_submit[op] + r.integers(1, 6, len(op))
        osub = np.where(osub > self.asof, self.pm_submit[op], osub)
        add_claims(op, "dup_other", other, osub, [("99490", 1, np.ones(len(op), bool), self.mlast[self.pm_m[op]])])
        # PCM: a specialist (allowed) and, planted, the CCM practitioner in the same month
        sp = np.flatnonzero(self.pm_pcm)
        add_claims(
            sp,
            "pcm",
            self.pcm_spec[self.pm_p[sp]],
            self.pm_submit[sp],
            [("99424", 1, np.ones(len(sp), bool), self.mlast[self.pm_m[sp]])],
        )
        sm = self.pm_flaw["ccm_with_pcm_same_practitioner"]
        add_claims(
            sm,
            "pcm_same",
            self.pm_prac[sm],
            self.pm_submit[sm],
            [("99424", 1, np.ones(len(sm), bool), self.mlast[self.pm_m[sm]])],
        )

        c_pm = np.concatenate(c_pm)
        c_kind = np.concatenate(c_kind)
        c_prac = np.concatenate(c_prac).astype(np.int64)
        c_submit = np.concatenate(c_submit).astype(np.int64)
        l_claim = np.concatenate(l_claim).astype(np.int64)
        l_code = np.concatenate(l_code)
        l_units = np.concatenate(l_units).astype(np.int64)
        l_dos = np.concatenate(l_dos).astype(np.int64)

        pids = self.pid[self.pm_p[c_pm]]
        months = self.pm_month[c_pm]
        prefix = np.where(np.isin(c_kind, ["pcm", "pcm_same"]), "PCM", "CCM")
        number = [
            f"{pre}{pid:07d}{mo}" + ("R" if k == "dup_exact" else f"P{pr:03d}" if k == "dup_other" else "")
            for pre, pid, mo, k, pr in zip(
                prefix.tolist(), pids.tolist(), months.tolist(), c_kind.tolist(), c_prac.tolist()
            )
        ]
        number = np.array(number, dtype=object)
        order = np.lexsort((number.astype(str), c_submit))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        claim_id = rank + 1  # id of each generated claim (in generation order)
        charge = np.array([V.CHARGE_MASTER[c] for c in l_code.tolist()]) * l_units
        total = np.bincount(l_claim, weights=charge, minlength=len(c_pm))
        # lines ordered by claim id; on each claim the base code first, then its add-on
        base_first = np.where(np.isin(l_code, ["99490", "99487", "99424"]), 0, 1)
        lorder = np.lexsort((l_code.astype(str), base_first, claim_id[l_claim]))
        l_claim, l_code, l_units, l_dos, charge = (
            l_claim[lorder],
            l_code[lorder],
            l_units[lorder],
            l_dos[lorder],
            charge[lorder],
        )
        cid_of_line = claim_id[l_claim]
        newc = np.ones(len(l_claim), dtype=bool)
        newc[1:] = cid_of_line[1:] != cid_of_line[:-1]
        g = np.cumsum(newc) - 1
        line_no = np.arange(len(l_claim)) - np.flatnonzero(newc)[g] + 1
        p_of_claim = self.pm_p[c_pm]
        inv = order
        self.tables["claim"] = {
            "id": np.arange(1, len(c_pm) + 1),
            "claim_number": number[inv],
            "patient_id": pids[inv],
            "practitioner_id": c_prac[inv],
            "clinic_id": self.clinic[p_of_claim][inv],
            "payer": np.array(V.PAYERS, dtype=object)[self.payer_idx[p_of_claim]][inv],
            "submitted_date": to_dates(c_submit[inv]),
            "submitted_month": yyyymm_of_month_index(month_index(c_submit[inv])),
            "total_charge": total[inv],
            "frequency_code": np.full(len(c_pm), "1", dtype=object),
            "place_of_service": np.full(len(c_pm), "11", dtype=object),
        }
        nl = len(l_claim)
        self.tables["claim_line"] = {
            "id": np.arange(1, nl + 1),
            "claim_id": cid_of_line,
            "line_number": line_no,
            "cpt_code": l_code,
            "units": l_units,
            "charge": charge,
            "service_date": to_dates(l_dos),
            "dos_month": yyyymm_of_month_index(month_index(l_dos)),
            "patient_id": pids[l_claim],
            "practitioner_id": c_prac[l_claim],
            "icd10_codes": self.icd_text[p_of_claim[l_claim]],
        }
        # kept for remittances (in generation order, plus line arrays in line-id order)
        self.c = dict(
            pm=c_pm,
            kind=c_kind,
            prac=c_prac,
            submit=c_submit,
            id=claim_id,
            total=total,
            number=number,
            payer=self.payer_idx[p_of_claim],
        )
        self.l = dict(claim=l_claim, code=l_code, units=l_units, dos=l_dos, charge=charge, id=np.arange(1, nl + 1))

    def _other_pcp(self, r, p: int, current: int) -> int:
        same = np.flatnonzero(self.pcp_clinic == self.clinic[p]) + 1
        others = same[same != current]
        return int(others[int(r.integers(0, len(others)))])

    # ------------------------------------------------------------------ remittances and appeals
    def _remittances(self) -> None:
        r = self.rng("remittances")
        c, li = self.c, self.l
        nc = len(c["pm"])
        received = c["submit"] + r.integers(14, 31, nc)
        has_remit = received <= self.asof
        kind = c["kind"]
        flaw = {k: np.isin(c["pm"], v) & (kind == "ccm") for k, v in self.pm_flaw.items()}
        # claim outcome: denial (group, carc, rarc) or paid
        group = np.full(nc, "", dtype=object)
        carc = np.full(nc, "", dtype=object)
        rarc = np.full(nc, None, dtype=object)
        appealable = np.zeros(nc, dtype=bool)
        denied = np.zeros(nc, dtype=bool)

        def deny(mask, g, code, remark):
            nonlocal denied
            mask = mask & ~denied
            group[mask], carc[mask] = g, code
            rarc[mask] = remark
            denied |= mask

        deny(kind == "dup_exact", "OA", "18", None)
        deny(kind == "dup_other", "CO", "97", "M86")
        wob = flaw["addon_without_base"]
        deny(wob & (r.random(nc) < 0.5), "CO", "B15", "N122")
        deny(wob, "CO", "107", "N122")
        deny((kind == "pcm_same") & (r.random(nc) < 0.5), "CO", "97", "M15")
        randoms = ~denied & ~wob & ~flaw["addon_over_cap"] & (r.random(nc) < RANDOM_DENIAL_RATE)
        pick = self._choice(r, [d[3] for d in V.RANDOM_DENIALS], nc)
        for i, (g, code, remark, _w, can_appeal) in enumerate(V.RANDOM_DENIALS):
            m = randoms & (pick == i)
            deny(m, g, code, remark)
            appealable |= m & can_appeal
        # line-level partial denial: units over the cap
        line_over_cap = flaw["addon_over_cap"][li["claim"]] & (li["code"] == "99439")
        over_carc = np.where(r.random(len(li["claim"])) < 0.5, "151", "119")

        # appeals of appealable denials; about half are overturned and paid on a second adjudication
        appeal = appealable & has_remit & (r.random(nc) < 0.55)
        filed = received + r.integers(5, 31, nc)
        appeal &= filed <= self.asof
        decided_on = filed + r.integers(30, 61, nc)
        decided = appeal & (decided_on <= self.asof)
        overturned = decided & (r.random(nc) < 0.5)
        upheld = decided & ~overturned

        # payment arithmetic per line
        terms = np.array([V.PAYER_TERMS[p] for p in V.PAYERS])
        factor, coins_share, seq_share = (terms[c["payer"][li["claim"]], i] for i in range(3))
        years = to_dates(li["dos"]).astype("datetime64[Y]").astype(np.int64) + 1970
        codes, code_idx = np.unique(li["code"].astype(str), return_inverse=True)
        year_list = np.unique(years)
        table = np.array([[V.national_fee(code, int(y)) for y in year_list] for code in codes.tolist()])
        fee = table[code_idx, np.searchsorted(year_list, years)] if len(years) else np.zeros(0)
        allowed = np.round(fee * li["units"] * factor, 2)
        coins = np.round(allowed * coins_share, 2)
        seq = np.round((allowed - coins) * seq_share, 2)
        paid = np.round(allowed - coins - seq, 2)
        co45 = np.round(li["charge"] - allowed, 2)

        # remittance rows: first adjudications, then second (overturned appeals)
        first = np.flatnonzero(has_remit)
        second = np.flatnonzero(overturned)
        r_claim = np.concatenate([first, second])
        r_seq = np.concatenate([np.ones(len(first), np.int64), np.full(len(second), 2, np.int64)])
        r_recv = np.concatenate([received[first], decided_on[second]])
        r_denied = np.concatenate([denied[first], np.zeros(len(second), bool)])
        order = np.lexsort((r_seq, c["id"][r_claim], r_recv))
        r_claim, r_seq, r_recv, r_denied = r_claim[order], r_seq[order], r_recv[order], r_denied[order]
        nr = len(r_claim)
        rid = np.arange(1, nr + 1)

        # remittance lines: every claim line of each remitted claim
        lines_by_claim = np.argsort(li["claim"], kind="stable")
        lc_sorted = li["claim"][lines_by_claim]
        s0 = np.searchsorted(lc_sorted, r_claim, "left")
        s1 = np.searchsorted(lc_sorted, r_claim, "right")
        cnt = s1 - s0
        rl_remit = np.repeat(np.arange(nr), cnt)
        rl_line = lines_by_claim[np.repeat(s0, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))]
        rl_denied_claim = r_denied[rl_remit]
        rl_line_denied = ~rl_denied_claim & line_over_cap[rl_line]
        zero = rl_denied_claim | rl_line_denied
        rl_allowed = np.where(zero, 0.0, allowed[rl_line])
        rl_paid = np.where(zero, 0.0, paid[rl_line])
        rl_coins = np.where(zero, 0.0, coins[rl_line])
        nrl = len(rl_remit)
        rlid = np.arange(1, nrl + 1)
        r_paid = np.bincount(rl_remit, weights=rl_paid, minlength=nr)
        r_pr = np.bincount(rl_remit, weights=rl_coins, minlength=nr)

        payer_code = np.array([V.PAYER_CODE[p] for p in V.PAYERS], dtype=object)[c["payer"][r_claim]]
        ymd = np.array(
            [d.replace("-", "") for d in np.datetime_as_string(to_dates(r_recv), unit="D").tolist()], dtype=object
        )
        pccn = r.integers(10**13, 10**14 - 1, nr)
        status = np.where(r_denied, "4", "1")
        self.tables["remittance"] = {
            "id": rid,
            "claim_id": c["id"][r_claim],
            "claim_number": c["number"][r_claim],
            "payer": np.array(V.PAYERS, dtype=object)[c["payer"][r_claim]],
            "payer_claim_control_number": [str(x) for x in pccn.tolist()],
            "status_code": status.astype(object),
            "total_charge": c["total"][r_claim],
            "paid_amount": np.round(r_paid, 2),
            "patient_responsibility": np.round(r_pr, 2),
            "received_date": to_dates(r_recv),
            "received_month": yyyymm_of_month_index(month_index(r_recv)),
            "check_number": [f"EFT{d}{p}" for d, p in zip(ymd.tolist(), payer_code.tolist())],
            "adjudication_seq": r_seq,
            "source_file": [f"835_{p}_{d}.835" for d, p in zip(ymd.tolist(), payer_code.tolist())],
        }
        self.tables["remittance_line"] = {
            "id": rlid,
            "remittance_id": rid[rl_remit],
            "claim_line_id": li["id"][rl_line],
            "cpt_code": li["code"][rl_line],
            "units": li["units"][rl_line],
            "charge": li["charge"][rl_line],
            "allowed": rl_allowed,
            "paid": rl_paid,
            "service_date": to_dates(li["dos"][rl_line]),
        }
        # adjustments: denial (whole line charge) or contractual/coinsurance/sequestration on paid lines
        adj_parts = []
        dl = np.flatnonzero(rl_denied_claim)
        claim_of_rl = r_claim[rl_remit]
        adj_parts.append((dl, group[claim_of_rl[dl]], carc[claim_of_rl[dl]], li["charge"][rl_line[dl]]))
        ol = np.flatnonzero(rl_line_denied)
        adj_parts.append((ol, np.full(len(ol), "CO", object), over_carc[rl_line[ol]], li["charge"][rl_line[ol]]))
        pl = np.flatnonzero(~zero)
        for g_, code_, amt in (("CO", "45", co45), ("PR", "2", coins), ("CO", "253", seq)):
            a = amt[rl_line[pl]]
            k = pl[a > 0]
            adj_parts.append((k, np.full(len(k), g_, object), np.full(len(k), code_, object), amt[rl_line[k]]))
        a_rl = np.concatenate([x[0] for x in adj_parts])
        a_group = np.concatenate([x[1] for x in adj_parts])
        a_carc = np.concatenate([x[2] for x in adj_parts])
        a_amt = np.concatenate([x[3] for x in adj_parts])
        ao = np.argsort(a_rl, kind="stable")
        a_rl, a_group, a_carc, a_amt = a_rl[ao], a_group[ao], a_carc[ao], a_amt[ao]
        self.tables["remittance_adjustment"] = {
            "id": np.arange(1, len(a_rl) + 1),
            "remittance_id": rid[rl_remit[a_rl]],
            "remittance_line_id": rlid[a_rl],
            "group_code": a_group,
            "carc": a_carc,
            "amount": np.round(a_amt, 2),
        }
        # remarks on denied lines
        rm_claim_rarc = rarc[claim_of_rl]
        dl_r = dl[np.array([x is not None for x in rm_claim_rarc[dl]], dtype=bool).reshape(-1)]
        m_rl = np.concatenate([dl_r, ol])
        m_code = np.concatenate([rm_claim_rarc[dl_r], np.full(len(ol), "N362", object)])
        mo = np.argsort(m_rl, kind="stable")
        m_rl, m_code = m_rl[mo], m_code[mo]
        self.tables["remittance_remark"] = {
            "id": np.arange(1, len(m_rl) + 1),
            "remittance_id": rid[rl_remit[m_rl]],
            "remittance_line_id": rlid[m_rl],
            "rarc": m_code,
        }
        # appeals
        ap = np.flatnonzero(appeal)
        ap = ap[np.lexsort((c["id"][ap], filed[ap]))]
        outcome = np.where(overturned[ap], "overturned", np.where(upheld[ap], "upheld", "pending"))
        claim_paid_total = np.bincount(li["claim"], weights=paid, minlength=nc)
        self.tables["appeal"] = {
            "id": np.arange(1, len(ap) + 1),
            "external_id": [f"APL{i:07d}" for i in range(1, len(ap) + 1)],
            "claim_id": c["id"][ap],
            "level": np.full(len(ap), "redetermination", dtype=object),
            "filed_date": to_dates(filed[ap]),
            "outcome": outcome.astype(object),
            "outcome_date": to_dates(np.where(decided[ap], decided_on[ap], NULL_DAY)),
            "amount_recovered": np.where(overturned[ap], np.round(claim_paid_total[ap], 2), np.nan),
        }
        first_mask = r_seq == 1
        rate_den = first_mask & (c["kind"][r_claim] != "dup_exact")
        self.stats.update(
            claims=int(nc),
            claim_lines=int(len(li["claim"])),
            remittances=int(nr),
            first_adjudications=int(rate_den.sum()),
            denied_claims=int((rate_den & r_denied).sum()),
            duplicate_denials=int((first_mask & (c["kind"][r_claim] == "dup_exact")).sum()),
            appeals=int(len(ap)),
            overturned=int(overturned.sum()),
            paid_amount=round(float(r_paid.sum()), 2),
            billed_amount=round(float(c["total"].sum()), 2),
        )

    # ------------------------------------------------------------------ consents and enrollment events
    def _consents_and_events(self) -> None:
        r = self.rng("consents")
        P = self.P
        pf = self.pat_flaw
        # accepted CCM consents
        acc = np.flatnonzero(self.cons_ok & ~np.isin(np.arange(P), pf["missing_consent"]))
        cdate = self.cons[acc].copy()
        cdate[np.isin(acc, pf["undated_consent"])] = NULL_DAY
        disc = np.ones((len(acc), 3), dtype=bool)
        inc = np.flatnonzero(np.isin(acc, pf["incomplete_consent"]))
        disc[inc, r.integers(0, 3, len(inc))] = False
        written = self.consent_method_written[acc]
        rows = [
            dict(
                p=acc,
                program="CCM",
                decision="accepted",
                date=cdate,
                method=np.where(written, "written", "verbal"),
                staff=self.cm[acc],
                prac=self.pcp[acc],
                d1=disc[:, 0],
                d2=disc[:, 1],
                d3=disc[:, 2],
                info=r.random(len(acc)) < 0.92,
                revoked=self.revoked[acc],
                doc=np.where(written, np.char.add("scan/consent-", self.pid[acc].astype(str)), None),
            )
        ]
        # a new consent for an ordinary practitioner change
        rc = np.flatnonzero(self.change_reconsent)
        rows.append(
            dict(
                p=rc,
                program="CCM",
                decision="accepted",
                date=self.change_day[rc],
                method=np.full(len(rc), "verbal"),
                staff=self.cm[rc],
                prac=self.change_new[rc],
                d1=np.ones(len(rc), bool),
                d2=np.ones(len(rc), bool),
                d3=np.ones(len(rc), bool),
                info=np.ones(len(rc), bool),
                revoked=self.revoked[rc],
                doc=np.full(len(rc), None),
            )
        )
        # declined offers
        dc = np.flatnonzero(self.decl_ok)
        ones = np.ones(len(dc), bool)
        rows.append(
            dict(
                p=dc,
                program="CCM",
                decision="declined",
                date=self.decl[dc],
                method=np.full(len(dc), "verbal"),
                staff=self.cm[dc],
                prac=self.pcp[dc],
                d1=ones,
                d2=ones,
                d3=ones,
                info=ones,
                revoked=np.full(len(dc), NULL_DAY),
                doc=np.full(len(dc), None),
            )
        )
        # RPM and PCM need their own consent
        rp = np.flatnonzero(self.rpm)
        ones = np.ones(len(rp), bool)
        rows.append(
            dict(
                p=rp,
                program="RPM",
                decision="accepted",
                date=self.enr[rp],
                method=np.full(len(rp), "verbal"),
                staff=self.cm[rp],
                prac=self.pcp[rp],
                d1=ones,
                d2=ones,
                d3=ones,
                info=ones,
                revoked=self.revoked[rp],
                doc=np.full(len(rp), None),
            )
        )
        pcm_p = np.unique(self.pm_p[self.pm_pcm])
        same = self.pm_flaw["ccm_with_pcm_same_practitioner"]
        same_p, same_first = np.unique(self.pm_p[same], return_index=True)
        pp = np.concatenate([pcm_p, same_p])
        pprac = np.concatenate([self.pcm_spec[pcm_p], self.pm_prac[same][same_first]])
        ones = np.ones(len(pp), bool)
        rows.append(
            dict(
                p=pp,
                program="PCM",
                decision="accepted",
                date=self.enr[pp],
                method=np.full(len(pp), "verbal"),
                staff=self.cm[pp],
                prac=pprac,
                d1=ones,
                d2=ones,
                d3=ones,
                info=ones,
                revoked=self.revoked[pp],
                doc=np.full(len(pp), None),
            )
        )
        cols = {
            k: np.concatenate(
                [np.asarray(x[k]) if not isinstance(x[k], str) else np.full(len(x["p"]), x[k]) for x in rows]
            )
            for k in rows[0]
        }
        sort_day = np.where(cols["date"] == NULL_DAY, self.cons[cols["p"]], cols["date"])
        order = np.lexsort((cols["program"].astype(str), sort_day, cols["p"]))
        cols = {k: v[order] for k, v in cols.items()}
        n = len(order)
        ids = np.arange(1, n + 1)
        self.tables["consent"] = {
            "id": ids,
            "external_id": [f"CNS{i:07d}" for i in ids.tolist()],
            "patient_id": self.pid[cols["p"]],
            "program": cols["program"].astype(object),
            "decision": cols["decision"].astype(object),
            "consent_date": to_dates(cols["date"]),
            "method": cols["method"].astype(object),
            "staff_id": cols["staff"],
            "practitioner_id": cols["prac"],
            "disclosed_cost_sharing": cols["d1"],
            "disclosed_one_practitioner": cols["d2"],
            "disclosed_right_to_stop": cols["d3"],
            "disclosed_info_sharing": cols["info"],
            "revoked_date": to_dates(cols["revoked"]),
            "document_ref": cols["doc"].astype(object),
        }

        # enrollment events (the funnel), CCM plus RPM/PCM enrollments
        ev = []
        stage = {
            "identified": 0,
            "outreached": 1,
            "reached": 2,
            "consented": 3,
            "enrolled": 4,
            "declined": 5,
            "disenrolled": 6,
            "ineligible": 1,
        }

        def add(mask, status, day, reason=None, program="CCM", prac=None):
            idx = np.flatnonzero(mask)
            ev.append(
                dict(
                    p=idx,
                    status=np.full(len(idx), status, dtype=object),
                    day=day[idx],
                    reason=np.full(len(idx), None, dtype=object) if reason is None else reason[idx],
                    program=np.full(len(idx), program, dtype=object),
                    order=np.full(len(idx), stage[status]),
                    prac=self.pcp[idx] if prac is None else prac[idx],
                )
            )

        add(self.ident_ok, "identified", self.ident)
        add(self.inel_ok, "ineligible", self.inel, np.full(P, V.INELIGIBLE_REASON, dtype=object))
        add(self.outr_ok, "outreached", self.outr)
        add(self.reach_ok, "reached", self.reach)
        add(self.unreach_ok, "declined", self.unreach, np.full(P, V.UNREACHABLE_REASON, dtype=object))
        add(self.cons_ok, "consented", self.cons)
        add(self.decl_ok, "declined", self.decl, self.decl_reason)
        add(self.enr_ok, "enrolled", self.enr)
        last_prac = np.where(self.change_new > 0, self.change_new, self.pcp)
        add(self.dis_ok, "disenrolled", self.dis, self.dis_reason, prac=last_prac)
        add(self.rpm, "enrolled", self.enr, program="RPM")
        pcm_mask = np.zeros(P, bool)
        pcm_mask[pp] = True
        pcm_prac = np.zeros(P, np.int64)
        pcm_prac[pp] = pprac
        add(pcm_mask, "enrolled", self.enr, program="PCM", prac=pcm_prac)
        cols = {k: np.concatenate([x[k] for x in ev]) for k in ev[0]}
        order = np.lexsort((cols["program"].astype(str), cols["order"], cols["day"], cols["p"]))
        cols = {k: v[order] for k, v in cols.items()}
        n = len(order)
        ids = np.arange(1, n + 1)
        self.tables["enrollment_event"] = {
            "id": ids,
            "external_id": [f"ENR{i:08d}" for i in ids.tolist()],
            "patient_id": self.pid[cols["p"]],
            "program": cols["program"],
            "status": cols["status"],
            "reason": cols["reason"],
            "event_date": to_dates(cols["day"]),
            "staff_id": self.cm[cols["p"]],
            "practitioner_id": cols["prac"],
        }

    # ------------------------------------------------------------------ care plans, visits, patients
    def _care_plans_and_visits(self) -> None:
        r = self.rng("care plans")
        P, asof = self.P, self.asof
        pf = self.pat_flaw
        # care plan versions: at enrollment, periodic revisions, and a substantial revision in complex months
        enr = np.flatnonzero(self.enr_ok & ~np.isin(np.arange(P), pf["no_care_plan"]))
        end = np.minimum(np.where(self.dis_ok[enr], self.dis[enr] - 1, asof), asof)
        interval = r.integers(180, 361, len(enr))
        nrev = np.minimum(np.maximum(end - self.enr[enr], 0) // interval, 3)
        cp_p = [enr, np.repeat(enr, nrev)]
        j = np.arange(nrev.sum()) - np.repeat(np.cumsum(nrev) - nrev, nrev) + 1
        cp_day = [self.enr[enr], np.repeat(self.enr[enr], nrev) + j * np.repeat(interval, nrev)]
        cp_sub = [np.zeros(len(enr), bool), r.random(nrev.sum()) < 0.3]
        cx = np.flatnonzero(self.pm_complex)
        cx = cx[~np.isin(self.pm_p[cx], pf["no_care_plan"])]
        cp_p.append(self.pm_p[cx])
        cp_day.append(self.pm_lo[cx])
        cp_sub.append(np.ones(len(cx), bool))
        cp_p, cp_day, cp_sub = np.concatenate(cp_p), np.concatenate(cp_day), np.concatenate(cp_sub)
        order = np.lexsort((~cp_sub, cp_day, cp_p))
        cp_p, cp_day, cp_sub = cp_p[order], cp_day[order], cp_sub[order]
        keep = np.ones(len(cp_p), bool)
        keep[1:] = ~((cp_p[1:] == cp_p[:-1]) & (cp_day[1:] == cp_day[:-1]))
        cp_p, cp_day, cp_sub = cp_p[keep], cp_day[keep], cp_sub[keep]
        newp = np.ones(len(cp_p), bool)
        newp[1:] = cp_p[1:] != cp_p[:-1]
        g = np.cumsum(newp) - 1
        version = np.arange(len(cp_p)) - np.flatnonzero(newp)[g] + 1
        nxt = np.concatenate([cp_day[1:], [BIG_DAY]])
        nxt = np.where(np.concatenate([~newp[1:], [False]]), nxt, BIG_DAY)
        p_end = np.where(self.dis_ok[cp_p], self.dis[cp_p], asof)
        reviewed = np.minimum(np.minimum(cp_day + r.integers(30, 121, len(cp_p)), nxt - 1), np.minimum(p_end, asof))
        reviewed = np.where(reviewed > cp_day, reviewed, NULL_DAY)
        shared = np.minimum(cp_day + r.integers(0, 6, len(cp_p)), asof)
        shared = np.where(np.isin(cp_p, pf["care_plan_not_shared"]), NULL_DAY, shared)
        signer = np.where(
            (self.change_day[cp_p] != NULL_DAY) & (cp_day >= self.change_day[cp_p]),
            self.change_new[cp_p],
            self.pcp[cp_p],
        )
        n = len(cp_p)
        ids = np.arange(1, n + 1)
        self.tables["care_plan"] = {
            "id": ids,
            "external_id": [f"CP{i:07d}" for i in ids.tolist()],
            "patient_id": self.pid[cp_p],
            "version": version,
            "established_date": to_dates(cp_day),
            "reviewed_date": to_dates(reviewed),
            "shared_with_patient_date": to_dates(shared),
            "signed_by_practitioner_id": signer,
            "covers_all_conditions": np.ones(n, bool),
            "has_measurable_goals": np.ones(n, bool),
            "electronic_access": np.ones(n, bool),
            "substantially_revised": cp_sub,
        }
        # complexity assessments (complex track months)
        mdm = np.where(r.random(len(cx)) < 0.6, "moderate", "high")
        self.tables["complexity_assessment"] = {
            "id": np.arange(1, len(cx) + 1),
            "patient_id": self.pid[self.pm_p[cx]],
            "service_month": self.pm_month[cx],
            "mdm_level": mdm.astype(object),
            "practitioner_id": self.pm_prac[cx],
        }

        # visits: routine E/M every 3-7 months with a yearly AWV, plus the CCM initiating visit
        rv = self.rng("visits")
        first_seen = self.first_seen.copy()
        noinit = pf["no_initiating_visit"]
        first_seen[noinit] = np.minimum(first_seen[noinit], self.cons[noinit] - 500)
        start = np.maximum(first_seen, self.wstart - 420)
        step = rv.integers(100, 201, P)
        v0 = start + (rv.random(P) * step).astype(np.int64)
        nvis = np.where(v0 <= asof, (asof - v0) // step + 1, 0)
        vp = np.repeat(np.arange(P), nvis)
        vj = np.arange(nvis.sum()) - np.repeat(np.cumsum(nvis) - nvis, nvis)
        vday = v0[vp] + vj * step[vp]
        awv = (vj % 3) == 1
        new_patient_awv = awv & (vj == 1) & (first_seen[vp] >= self.wstart - 420)
        code = np.where(
            awv, np.where(new_patient_awv, "G0438", "G0439"), np.where(rv.random(len(vp)) < 0.65, "99213", "99214")
        )
        vtype = np.where(awv, "AWV", "EM")
        ip = np.flatnonzero(self.cons_ok)
        iday = np.maximum(self.cons[ip] - rv.integers(0, 46, len(ip)), first_seen[ip])
        vp = np.concatenate([vp, ip])
        vday = np.concatenate([vday, iday])
        code = np.concatenate([code, np.full(len(ip), "99214")])
        vtype = np.concatenate([vtype, np.full(len(ip), "EM")])
        drop = np.isin(vp, noinit) & (vday >= self.cons[vp] - 400) & (vday <= self.cons[vp] + 60)
        keep = ~drop & (vday <= asof)
        vp, vday, code, vtype = vp[keep], vday[keep], code[keep], vtype[keep]
        order = np.lexsort((vday, vp))
        vp, vday, code, vtype = vp[order], vday[order], code[order], vtype[order]
        prac = np.where(
            (self.change_day[vp] != NULL_DAY) & (vday >= self.change_day[vp]), self.change_new[vp], self.pcp[vp]
        )
        covering = rv.random(len(vp)) < 0.08
        alt = np.array(
            [self._other_pcp(rv, int(p), int(q)) for p, q in zip(vp[covering].tolist(), prac[covering].tolist())],
            dtype=np.int64,
        )
        prac[covering] = alt
        n = len(vp)
        ids = np.arange(1, n + 1)
        self.tables["visit"] = {
            "id": ids,
            "external_id": [f"V{i:08d}" for i in ids.tolist()],
            "patient_id": self.pid[vp],
            "practitioner_id": prac,
            "clinic_id": self.clinic[vp],
            "visit_date": to_dates(vday),
            "cpt_code": code.astype(object),
            "visit_type": vtype.astype(object),
            "face_to_face": np.ones(n, bool),
        }

        # facility stays (random + planted)
        pa = np.array([(pm, a, b) for pm, (a, b) in sorted(self.planted_stays.items())], dtype=np.int64).reshape(-1, 3)
        sp = np.concatenate([self.st_p, self.pm_p[pa[:, 0]]])
        sa = np.concatenate([self.st_admit, pa[:, 1]])
        sd = np.concatenate([self.st_disc, pa[:, 2]])
        snf = np.concatenate([self.st_snf, np.zeros(len(pa), bool)])
        order = np.lexsort((sa, sp))
        sp, sa, sd, snf = sp[order], sa[order], sd[order], snf[order]
        kind = np.where(snf, "SNF", "inpatient")
        names_ip = np.array(V.FACILITY_NAMES["inpatient"], dtype=object)
        names_snf = np.array(V.FACILITY_NAMES["SNF"], dtype=object)
        fac = np.where(snf, names_snf[sp % len(names_snf)], names_ip[sp % len(names_ip)])
        n = len(sp)
        ids = np.arange(1, n + 1)
        self.tables["facility_stay"] = {
            "id": ids,
            "external_id": [f"FS{i:07d}" for i in ids.tolist()],
            "patient_id": self.pid[sp],
            "kind": kind.astype(object),
            "admit_date": to_dates(sa),
            "discharge_date": to_dates(np.where(sd > asof, NULL_DAY, sd)),
            "facility_name": fac,
        }

        # patients last: the current billing practitioner reflects practitioner changes
        billing = np.where(self.change_new > 0, self.change_new, self.pcp)
        enrolled_now = self.enr_ok & ~self.dis_ok
        # The EHR's next scheduled contact for enrolled patients: 1-14 days after as_of, none scheduled for
        # every fifth patient (derived from the id, no random draw, so the other tables do not change).
        next_contact = np.where(enrolled_now & (self.pid % 5 != 0), self.asof + 1 + (self.pid * 5) % 14, NULL_DAY)
        self.tables["patient"] = {
            "id": self.pid,
            "mrn": [str(1_000_000 + i) for i in self.pid.tolist()],
            "mbi": mbi_for(self.pid, self.seed),
            "first_name": self.first_name,
            "last_name": self.last_name,
            "birth_date": to_dates(self.birth),
            "sex": np.where(self.female, "F", "M").astype(object),
            "phone": self.phone,
            "next_contact_date": to_dates(next_contact),
            "payer": np.array(V.PAYERS, dtype=object)[self.payer_idx],
            "is_qmb": self.is_qmb,
            "clinic_id": self.clinic,
            "billing_practitioner_id": billing,
            "care_manager_id": self.cm,
            "first_seen_date": to_dates(first_seen),
            "deceased_date": to_dates(self.deceased),
        }
        self.stats.update(
            patients=P,
            eligible=int(self.eligible.sum()),
            enrolled=int(enrolled_now.sum()),
            ever_enrolled=int(self.enr_ok.sum()),
            consented=int(self.cons_ok.sum()),
            declined=int((self.decl_ok | self.unreach_ok).sum()),
            disenrolled=int(self.dis_ok.sum()),
            enrolled_patient_months=int(len(self.pm_p)),
            billable_patient_months=int(self.pm_billable.sum()),
            rpm_patients=int(self.rpm.sum()),
        )

    # ------------------------------------------------------------------ output order
    TABLE_ORDER = (
        "practice",
        "clinic",
        "practitioner",
        "staff",
        "patient",
        "diagnosis",
        "visit",
        "facility_stay",
        "enrollment_event",
        "consent",
        "care_plan",
        "complexity_assessment",
        "time_entry",
        "claim",
        "claim_line",
        "remittance",
        "remittance_line",
        "remittance_adjustment",
        "remittance_remark",
        "appeal",
    )
