"""The import formats: one ``Kind`` per file type, one ``Col`` per column.

Kept as data (not code per table) so the validator, the loader, the docs
(``docs/import-format.md``) and the page's "expected columns" help all read the
same definition and cannot drift apart.  Every reference to another table is
by natural key (mrn, npi, staff external_id, clinic code, claim number), never
by an internal id: the practice's exports do not know our ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ccm_core import rules as rules_mod
from ccm_core.storage import schema

# Column types the validator knows (see parse.py).
TYPES = {
    "text": "text",
    "int": "whole number",
    "money": "amount, e.g. 60.49 (a leading $ and thousands commas are accepted)",
    "number": "number, e.g. 0.8",
    "date": "date: 2025-11-03 or 11/03/2025",
    "datetime": "date and time: 2025-11-03 14:05 or 11/03/2025 2:05 PM; time entries also take a time alone (14:05)",
    "bool": "yes/no (also true/false, y/n, 1/0)",
    "month": "month: 2025-11 (also 202511 or a date in the month)",
    "choice": "one of the listed values (any case)",
    "icd10": "ICD-10-CM code, with or without the dot (E11.9 or E119)",
    "icd10_list": "ICD-10-CM codes separated by commas or semicolons",
    "cpt": "CPT (5 digits, or 4 digits + F/T) or HCPCS (letter + 4 digits)",
    "npi": "NPI: 10 digits with a valid check digit",
    "mbi": "Medicare Beneficiary Identifier: 11 characters (dashes ignored)",
    "pos": "place of service: 2 digits",
}

PRACTITIONER_CREDENTIALS = ("MD", "DO", "NP", "PA", "CNS", "CNM")
STAFF_ROLES = ("care_manager", "scheduler", "biller", "practitioner", "other")


@dataclass(frozen=True)
class Col:
    """One column of an import file."""

    name: str
    type: str = "text"
    required: bool = False
    target: str | None = None  # database column; None = same as name; "" = not stored directly
    ref: str | None = None  # referenced kind of row: clinic, practitioner, staff, patient, claim, practice
    choices: tuple[str, ...] = ()
    max_len: int | None = None
    default: object = None
    min_value: float | None = None
    max_value: float | None = None
    aliases: tuple[str, ...] = ()
    doc: str = ""
    future_ok: bool = False  # a date that may lie ahead (a scheduled contact); other dates may not

    @property
    def db_column(self) -> str:
        return self.name if self.target is None else self.target

    def type_label(self) -> str:
        if self.type == "choice":
            return "one of: " + ", ".join(self.choices)
        return TYPES[self.type].split(":")[0] if self.type in ("date", "datetime", "month") else TYPES[self.type]


@dataclass(frozen=True)
class Kind:
    """One import file type, e.g. ``patients.csv`` into table ``patient``."""

    name: str
    file_name: str
    table: object  # sqlalchemy Table
    key: tuple[str, ...]  # natural key, as file column names
    columns: tuple[Col, ...]
    doc: str
    name_hints: tuple[str, ...] = ()  # extra words that identify the file by its name
    notes: tuple[str, ...] = field(default=())

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def col(self, name: str) -> Col:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def header_key(text: str) -> str:
    """Flexible header matching: case, spaces, underscores, dashes and dots do not matter."""
    return re.sub(r"[^a-z0-9]", "", str(text).replace("\ufeff", "").lower())


def _mrn(required=True, **kw):
    return Col(
        "mrn",
        required=required,
        ref="patient",
        target="patient_id",
        max_len=32,
        aliases=("patient_mrn", "medical_record_number"),
        doc="the patient's MRN (patients.csv)",
        **kw,
    )


def _npi(name="practitioner_npi", required=False, target="practitioner_id", doc="billing practitioner NPI", aliases=()):
    return Col(name, "npi", required=required, ref="practitioner", target=target, doc=doc, aliases=aliases)


def _staff(
    name="staff_external_id",
    required=False,
    target="staff_id",
    doc="staff member's external_id (staff.csv)",
    aliases=(),
):
    return Col(name, required=required, ref="staff", target=target, max_len=64, doc=doc, aliases=aliases)


def _clinic(required=False):
    return Col(
        "clinic_code",
        required=required,
        ref="clinic",
        target="clinic_id",
        max_len=32,
        aliases=("clinic",),
        doc="clinic code (clinics.csv)",
    )


def _ext(doc="the source system's row id; re-importing the same id updates the row"):
    return Col("external_id", required=True, max_len=64, doc=doc, aliases=("id", "row_id", "source_id"))


def _program():
    return Col("program", "choice", choices=schema.PROGRAMS, default="CCM", doc="care-management program (default CCM)")


def _date(name, required=False, doc="", aliases=()):
    return Col(name, "date", required=required, doc=doc, aliases=aliases)


def _bool(name, default, doc="", required=False):
    return Col(name, "bool", required=required, default=None if required else default, doc=doc)


KINDS: dict[str, Kind] = {}


def _add(kind: Kind) -> None:
    KINDS[kind.name] = kind


_add(
    Kind(
        "clinics",
        "clinics.csv",
        schema.clinic,
        ("code",),
        (
            Col("code", required=True, max_len=32, aliases=("clinic_code",), doc="short unique clinic code"),
            Col("name", required=True, max_len=200, aliases=("clinic_name",)),
            Col(
                "practice_name",
                required=True,
                ref="practice",
                target="practice_id",
                max_len=200,
                doc="the practice the clinic belongs to; created when new",
            ),
            Col("practice_tax_id", target="", max_len=20, doc="the practice's tax id (stored on the practice)"),
            Col("place_of_service", "pos", default="11", aliases=("pos",), doc="11 = office"),
            _bool("is_rhc_fqhc", False, "rural health clinic / FQHC"),
        ),
        "Practice sites. The practice itself is named on each row and created on first use.",
        name_hints=("clinic", "practice", "site", "location"),
    )
)

_add(
    Kind(
        "practitioners",
        "practitioners.csv",
        schema.practitioner,
        ("npi",),
        (
            Col("npi", "npi", required=True, doc="the practitioner's individual NPI"),
            Col("first_name", required=True, max_len=100),
            Col("last_name", required=True, max_len=100),
            Col("credential", "choice", required=True, choices=PRACTITIONER_CREDENTIALS),
            _clinic(),
            _bool("active", True),
        ),
        "Billing practitioners (physicians and qualified health professionals).",
        name_hints=("practitioner", "provider", "physician", "clinician"),
    )
)

_add(
    Kind(
        "staff",
        "staff.csv",
        schema.staff,
        ("external_id",),
        (
            _ext("the staff member's id in the source system; time entries refer to it"),
            Col("first_name", required=True, max_len=100),
            Col("last_name", required=True, max_len=100),
            Col("credential", required=True, max_len=20, doc="RN, LPN, MA, LCSW, MD, NP, none, ..."),
            _bool("is_clinical", None, "only clinical staff minutes count toward CCM", required=True),
            Col("role", "choice", required=True, choices=STAFF_ROLES),
            _npi(doc="set when this staff row is a billing practitioner logging their own time"),
            _clinic(),
            _bool("active", True),
            Col(
                "fte",
                "number",
                min_value=0,
                max_value=1.5,
                aliases=("fte_ratio",),
                doc="care manager's full-time equivalent (1.0 = full time): their minutes capacity on My month",
            ),
        ),
        "Everyone who logs care-management time.",
        name_hints=("staff", "employee", "user"),
    )
)

_add(
    Kind(
        "patients",
        "patients.csv",
        schema.patient,
        ("mrn",),
        (
            Col("mrn", required=True, max_len=32, aliases=("medical_record_number", "patient_mrn")),
            Col("mbi", "mbi", doc="Medicare Beneficiary Identifier"),
            Col("first_name", required=True, max_len=100),
            Col("last_name", required=True, max_len=100),
            _date("birth_date", True, aliases=("dob", "date_of_birth")),
            Col("sex", "choice", choices=("M", "F", "U", "X")),
            Col("phone", max_len=20),
            Col(
                "next_contact_date",
                "date",
                future_ok=True,
                aliases=("next_contact", "next_scheduled_contact"),
                doc="next scheduled care-management contact (may be in the future)",
            ),
            Col(
                "payer",
                required=True,
                max_len=60,
                doc="one of the payer vocabulary ("
                + ", ".join(f'"{p}"' for p in rules_mod.PAYER_VOCABULARY)
                + '); other spellings of these (e.g. "Medicare FFS") are read through the payer aliases, any '
                "other value is imported with a warning and does not count as an eligible payer",
            ),
            _bool("is_qmb", False, "Qualified Medicare Beneficiary"),
            _clinic(required=True),
            _npi("billing_practitioner_npi", target="billing_practitioner_id", doc="the CCM billing practitioner"),
            _staff(
                "care_manager_external_id",
                target="care_manager_id",
                doc="the care manager's staff external_id",
                aliases=("care_manager",),
            ),
            _date(
                "first_seen_date",
                doc="first visit with the practice; decides whether CCM needs an initiating visit "
                "(new patient = first seen less than 12 months before CCM started); when "
                "absent the patient counts as new, so an initiating visit is required",
            ),
            _date("deceased_date"),
        ),
        "Patients, keyed by MRN.",
        name_hints=("patient", "member", "demographic"),
    )
)

_add(
    Kind(
        "diagnoses",
        "diagnoses.csv",
        schema.diagnosis,
        ("external_id",),
        (
            _ext(),
            _mrn(),
            Col("icd10", "icd10", required=True, aliases=("icd10_code", "icd_10", "diagnosis_code")),
            _date("onset_date"),
            _date("resolved_date"),
            _bool("on_problem_list", True),
        ),
        "Problem-list diagnoses; eligibility counts chronic conditions from them.",
        name_hints=("diagnos", "problem", "condition", "icd"),
    )
)

_add(
    Kind(
        "eligibility_overrides",
        "eligibility_overrides.csv",
        schema.eligibility_override,
        ("mrn", "program", "decided_on"),
        (
            _mrn(),
            _program(),
            _bool("eligible", None, "the practitioner's decision", required=True),
            Col("reason", required=True, doc="why (the clinical judgement)"),
            _npi(required=True, doc="the practitioner who decided"),
            _date("decided_on", True),
        ),
        "A practitioner's judgement that overrides the code-list eligibility for a patient.",
        name_hints=("override", "eligib"),
    )
)

_add(
    Kind(
        "visits",
        "visits.csv",
        schema.visit,
        ("external_id",),
        (
            _ext(),
            _mrn(),
            _npi(doc="the practitioner seen"),
            _clinic(),
            _date("visit_date", True, aliases=("date_of_service", "dos")),
            Col("cpt_code", "cpt", required=True, aliases=("cpt", "code")),
            Col("visit_type", "choice", required=True, choices=("EM", "AWV", "IPPE", "TCM", "other")),
            _bool("face_to_face", True),
        ),
        "Face-to-face visits (the initiating visit for CCM, AWV, TCM...).",
        name_hints=("visit", "encounter", "appointment"),
    )
)

_add(
    Kind(
        "facility_stays",
        "facility_stays.csv",
        schema.facility_stay,
        ("external_id",),
        (
            _ext(),
            _mrn(),
            Col("kind", "choice", required=True, choices=("inpatient", "SNF"), aliases=("stay_type", "setting")),
            _date("admit_date", True),
            _date("discharge_date", doc="empty while the patient is still in"),
            Col("facility_name", max_len=200),
        ),
        "Inpatient and SNF stays; CCM minutes on those days do not count.",
        name_hints=("stay", "admission", "inpatient", "facility", "snf"),
    )
)

_add(
    Kind(
        "enrollment_events",
        "enrollment_events.csv",
        schema.enrollment_event,
        ("external_id",),
        (
            _ext(),
            _mrn(),
            _program(),
            Col("status", "choice", required=True, choices=schema.ENROLLMENT_STATUSES),
            Col("reason", max_len=80, doc="decline, disenrollment or ineligibility reason"),
            _date("event_date", True),
            _staff(doc="who did the outreach or enrollment"),
            _npi(),
        ),
        "The enrollment funnel: identified, outreached, reached, consented, enrolled, declined, disenrolled.",
        name_hints=("enrollment", "enrolment", "outreach", "funnel"),
    )
)

_add(
    Kind(
        "consents",
        "consents.csv",
        schema.consent,
        ("external_id",),
        (
            _ext(),
            _mrn(),
            _program(),
            Col("decision", "choice", required=True, choices=("accepted", "declined")),
            _date("consent_date", doc="empty = undated (an audit failure, but recorded as such)"),
            Col("method", "choice", choices=("verbal", "written")),
            _staff(doc="who took the consent"),
            _npi(doc="the billing practitioner the consent is tied to"),
            _bool("disclosed_cost_sharing", False),
            _bool("disclosed_one_practitioner", False),
            _bool("disclosed_right_to_stop", False),
            _bool("disclosed_info_sharing", False),
            _date("revoked_date"),
            Col("document_ref", max_len=200),
        ),
        "Patient consent to CCM with what was explained.",
        name_hints=("consent",),
    )
)

_add(
    Kind(
        "care_plans",
        "care_plans.csv",
        schema.care_plan,
        ("external_id",),
        (
            _ext(),
            _mrn(),
            Col("version", "int", required=True, min_value=1, max_value=10_000),
            _date("established_date", True),
            _date("reviewed_date"),
            _date("shared_with_patient_date"),
            _npi("signed_by_npi", target="signed_by_practitioner_id", doc="practitioner who signed the plan"),
            _bool("covers_all_conditions", True),
            _bool("has_measurable_goals", True),
            _bool("electronic_access", True),
            _bool("substantially_revised", False),
        ),
        "Comprehensive care plans, one row per version.",
        name_hints=("care_plan", "careplan", "plan"),
    )
)

_add(
    Kind(
        "complexity_assessments",
        "complexity_assessments.csv",
        schema.complexity_assessment,
        ("mrn", "service_month"),
        (
            _mrn(),
            Col("service_month", "month", required=True),
            Col("mdm_level", "choice", required=True, choices=("moderate", "high")),
            _npi(),
        ),
        "Medical decision-making level per patient-month (needed for complex CCM 99487/99489).",
        name_hints=("complexity", "mdm"),
    )
)

_add(
    Kind(
        "time_entries",
        "time_entries.csv",
        schema.time_entry,
        ("external_id",),
        (
            _ext(),
            _mrn(),
            _staff(required=True, doc="who did the work (staff.csv external_id)"),
            _program(),
            _date("service_date", True, aliases=("date",)),
            Col(
                "started_at",
                "datetime",
                aliases=("start_time", "start"),
                doc="when absent: the minutes cannot be checked for overlap with another program's time (they all "
                "count) and the audit's time-log item fails (no start time)",
            ),
            Col(
                "minutes",
                "int",
                required=True,
                min_value=0,
                max_value=24 * 60,
                aliases=("duration", "duration_minutes"),
            ),
            Col(
                "activity",
                required=True,
                max_len=40,
                doc="what was done, from the activity vocabulary: phone_call, med_reconciliation, care_plan_update, "
                "coordination, lab_review, transition_followup (other text is accepted; it does not change the "
                "count, but an empty activity fails the audit's time-log item)",
            ),
            Col("note", aliases=("notes", "narrative")),
            _npi(
                doc="billing practitioner whose month this is: their own minutes count for 99491, and the month's "
                "consent must be tied to them; when absent the patient's billing practitioner (patients.csv) is "
                "used"
            ),
            Col("entry_method", "choice", choices=("realtime", "manual", "batch", "import"), default="import"),
            Col("entered_at", "datetime"),
            _bool("interactive", False, "interactive contact with the patient"),
        ),
        "The care-management time log, one row per activity.",
        name_hints=("time", "minute", "activity", "log"),
    )
)

_add(
    Kind(
        "claims",
        "claims.csv",
        schema.claim,
        ("claim_number", "line_number"),
        (
            Col(
                "claim_number",
                required=True,
                max_len=38,
                aliases=("patient_control_number", "claim_id"),
                doc="our claim number (CLP01 in the payer's 835)",
            ),
            Col("line_number", "int", required=True, min_value=1, max_value=999, aliases=("line",)),
            _mrn(),
            _npi("billing_npi", required=True, aliases=("practitioner_npi",), doc="billing practitioner NPI"),
            _clinic(),
            Col("payer", required=True, max_len=60, doc="the payer billed, in the payer vocabulary (see patients.csv)"),
            _date("submitted_date", True),
            Col(
                "frequency_code",
                "choice",
                choices=("1", "7", "8"),
                default="1",
                doc="1 original, 7 replacement, 8 void",
            ),
            Col(
                "original_claim_number",
                ref="claim",
                target="original_claim_id",
                max_len=38,
                doc="for a replacement: the claim it replaces (in the database or this file)",
            ),
            Col("place_of_service", "pos", aliases=("pos",)),
            Col("cpt_code", "cpt", required=True, aliases=("cpt", "hcpcs", "procedure_code")),
            Col("modifier", max_len=8, doc="modifiers, comma separated (e.g. 25 or 95,GT)"),
            Col("units", "int", default=1, min_value=1, max_value=99),
            Col("charge", "money", required=True, min_value=0),
            _date("service_date", True, aliases=("date_of_service", "dos")),
            Col("icd10_codes", "icd10_list", aliases=("diagnosis_codes", "icd10")),
        ),
        "Claims, one row per claim line; claim-level columns repeat on each line and must agree.",
        name_hints=("claim", "charge", "billing"),
        notes=(
            "total_charge is the sum of the line charges.",
            "Lines missing from a re-import are kept (imports never delete); revert the batch to remove them.",
        ),
    )
)

_add(
    Kind(
        "appeals",
        "appeals.csv",
        schema.appeal,
        ("external_id",),
        (
            _ext(),
            Col("claim_number", required=True, ref="claim", target="claim_id", max_len=38),
            Col(
                "line_number",
                "int",
                target="claim_line_id",
                min_value=1,
                max_value=999,
                doc="the appealed line; empty = whole claim",
            ),
            Col("level", "choice", required=True, choices=("redetermination", "reconsideration", "ALJ", "reopening")),
            _date("filed_date", True),
            Col("outcome", "choice", choices=("pending", "overturned", "upheld", "partial"), default="pending"),
            _date("outcome_date"),
            Col("amount_recovered", "money", min_value=0),
        ),
        "Appeals of denied claims or lines.",
        name_hints=("appeal",),
    )
)

# Order in which several files of one run are imported: every kind after the kinds it refers to.
X12_KIND = "x12_835"
ORDER = list(KINDS)[:-1] + [X12_KIND, "appeals"]  # remittances before appeals (appeals may follow denials)
assert set(ORDER) == set(KINDS) | {X12_KIND}


def kind_from_file_name(file_name: str) -> str | None:
    """Best guess from the file name alone (``2025-11 Time Entries.xlsx`` -> time_entries)."""
    base = header_key(re.sub(r"\.(csv|txt|tsv|xlsx|xlsm)$", "", file_name.rsplit("/", 1)[-1], flags=re.I))
    low = file_name.lower()
    if re.search(r"\.(835|x12|edi|era)$", low) or "835" in base:
        return X12_KIND
    for name, kind in KINDS.items():  # exact kind or file name first
        if base in (header_key(name), header_key(kind.file_name.rsplit(".", 1)[0]), header_key(kind.table.name)):
            return name
    hits = [name for name, kind in KINDS.items() if any(header_key(h) in base for h in kind.name_hints)]
    # "claims" also contains "claim" hint only; prefer the most specific (longest) hint match.
    if len(hits) == 1:
        return hits[0]
    if hits:
        best = max(hits, key=lambda n: max(len(header_key(h)) for h in KINDS[n].name_hints if header_key(h) in base))
        return best
    return None


def kind_from_header(headers: list[str]) -> str | None:
    """The kind whose required columns are all present and that explains the most columns."""
    keys = {header_key(h) for h in headers if str(h).strip()}
    best, best_score = None, 0
    for name, kind in KINDS.items():
        names = {}
        for c in kind.columns:
            for a in (c.name, *c.aliases):
                names[header_key(a)] = c.name
        required = {header_key(r) for r in kind.required}
        matched = {names[k] for k in keys if k in names}
        if not {names[r] for r in required} <= matched:
            continue
        score = len(matched) - 0.01 * len(kind.columns)
        if score > best_score:
            best, best_score = name, score
    return best


def format_reference_markdown() -> str:
    """The per-file column tables of docs/import-format.md, generated from KINDS (tests keep the doc in sync)."""
    out = []
    for name in ORDER:
        if name == X12_KIND:
            continue
        kind = KINDS[name]
        key = " + ".join(kind.key)
        out.append(f"### {kind.file_name} (kind `{name}`, table `{kind.table.name}`)\n")
        out.append(f"{kind.doc} Natural key for upserts: **{key}**.\n")
        out.append("| column | type | required | notes |")
        out.append("|---|---|---|---|")
        for c in kind.columns:
            notes = []
            if c.doc:
                notes.append(c.doc)
            if c.default is not None and not c.required:
                d = {True: "yes", False: "no"}.get(c.default, c.default) if c.type == "bool" else c.default
                notes.append(f"default {d}")
            if c.max_len:
                notes.append(f"at most {c.max_len} characters")
            if c.min_value is not None or c.max_value is not None:
                lo = "" if c.min_value is None else f"{c.min_value:g}"
                hi = "" if c.max_value is None else f"{c.max_value:g}"
                notes.append(f"range {lo}..{hi}")
            if c.aliases:
                notes.append("also accepted as: " + ", ".join(c.aliases))
            req = "yes" if c.required else ""
            out.append(f"| {c.name} | {c.type_label()} | {req} | {'; '.join(notes)} |")
        for n in kind.notes:
            out.append(f"\n{n}")
        out.append("")
    return "\n".join(out)
