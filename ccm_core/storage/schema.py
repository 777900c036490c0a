"""The whole CCM domain as SQLAlchemy Core tables.

Core (not ORM) because every page is an aggregation: queries are built with
``select()`` over these ``Table`` objects and run unchanged on SQLite and
PostgreSQL.  Conventions that the rest of ``ccm_core`` relies on:

* ``service_month`` / ``dos_month`` are integers ``YYYYMM`` (e.g. 202511),
  denormalised from the date on insert, so month filters and GROUP BYs are
  plain integer comparisons on both databases and can use an index.
* ``external_id`` is the source system's own key (EHR row id, claim number);
  imports upsert on it, which is what makes re-imports idempotent.
* ``import_batch_id`` records which import wrote a row, so an admin can
  revert a batch.
* Money is ``Numeric(12, 2)`` returned as float; minutes are integers.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


def Money(name: str, **kw) -> Column:  # noqa: N802 - reads like a type
    return Column(name, Numeric(12, 2, asdecimal=False), **kw)


def _batch() -> Column:
    return Column("import_batch_id", Integer, ForeignKey("import_batch.id"), nullable=True, index=True)


# --------------------------------------------------------------------------- organisation
practice = Table(
    "practice",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("tax_id", String(20)),
)

clinic = Table(
    "clinic",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("practice_id", Integer, ForeignKey("practice.id"), nullable=False),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("place_of_service", String(2), nullable=False, server_default="11"),
    Column("is_rhc_fqhc", Boolean, nullable=False, server_default="0"),
    _batch(),
)

practitioner = Table(
    "practitioner",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("npi", String(10), nullable=False, unique=True),
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("credential", String(20), nullable=False),  # MD, DO, NP, PA, CNS, CNM
    Column("clinic_id", Integer, ForeignKey("clinic.id")),
    Column("active", Boolean, nullable=False, server_default="1"),
    _batch(),
)

staff = Table(
    "staff",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("credential", String(20), nullable=False),  # RN, LPN, MA, LCSW, MD, NP, none...
    # Only clinical staff (and the billing practitioner) minutes count toward CCM.
    Column("is_clinical", Boolean, nullable=False),
    Column("role", String(40), nullable=False),  # care_manager, scheduler, biller, practitioner
    # Set when this staff row *is* a billing practitioner logging their own time
    # (99491/99437 and PCM 99424/99425 need the practitioner's personal minutes).
    Column("practitioner_id", Integer, ForeignKey("practitioner.id")),
    Column("clinic_id", Integer, ForeignKey("clinic.id")),
    Column("active", Boolean, nullable=False, server_default="1"),
    # Full-time equivalent (1.0 = full time) of a care manager: their minutes capacity (ccm_core.kpis.queues).
    Column("fte", Numeric(4, 2, asdecimal=False)),
    _batch(),
)

# --------------------------------------------------------------------------- patients
patient = Table(
    "patient",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("mrn", String(32), nullable=False, unique=True),
    Column("mbi", String(11)),  # Medicare Beneficiary Identifier
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(1)),
    Column("phone", String(20)),
    Column("next_contact_date", Date),  # next scheduled care-management contact, from the EHR's schedule
    Column("payer", String(60), nullable=False),  # "Medicare Part B", "Medicare Advantage", ...
    Column("is_qmb", Boolean, nullable=False, server_default="0"),
    Column("clinic_id", Integer, ForeignKey("clinic.id"), nullable=False),
    Column("billing_practitioner_id", Integer, ForeignKey("practitioner.id")),
    Column("care_manager_id", Integer, ForeignKey("staff.id")),
    Column("first_seen_date", Date),  # first visit with the practice (new-patient test)
    Column("deceased_date", Date),
    _batch(),
    Index("ix_patient_clinic_practitioner", "clinic_id", "billing_practitioner_id"),
)

diagnosis = Table(
    "diagnosis",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False, index=True),
    Column("icd10", String(8), nullable=False),  # normalised: upper case, no dot (E119)
    Column("onset_date", Date),
    Column("resolved_date", Date),
    Column("on_problem_list", Boolean, nullable=False, server_default="1"),
    _batch(),
)

# The practitioner's clinical judgement overrides the code-list eligibility
# ("significant risk" is theirs to decide), per patient.
eligibility_override = Table(
    "eligibility_override",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False, index=True),
    Column("program", String(10), nullable=False, server_default="CCM"),
    Column("eligible", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("practitioner_id", Integer, ForeignKey("practitioner.id"), nullable=False),
    Column("decided_on", Date, nullable=False),
    _batch(),
)

visit = Table(
    "visit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("practitioner_id", Integer, ForeignKey("practitioner.id")),
    Column("clinic_id", Integer, ForeignKey("clinic.id")),
    Column("visit_date", Date, nullable=False),
    Column("cpt_code", String(5), nullable=False),  # 99213, G0438 (AWV), G0402 (IPPE), 99495 (TCM)
    Column("visit_type", String(20), nullable=False),  # EM, AWV, IPPE, TCM, other
    Column("face_to_face", Boolean, nullable=False, server_default="1"),
    _batch(),
    Index("ix_visit_patient_date", "patient_id", "visit_date"),
)

facility_stay = Table(
    "facility_stay",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("kind", String(10), nullable=False),  # inpatient, SNF
    Column("admit_date", Date, nullable=False),
    Column("discharge_date", Date),  # NULL = still in
    Column("facility_name", String(200)),
    _batch(),
    CheckConstraint("discharge_date IS NULL OR discharge_date >= admit_date", name="stay_dates"),
    Index("ix_facility_stay_patient_dates", "patient_id", "admit_date", "discharge_date"),
)

# --------------------------------------------------------------------------- program
PROGRAMS = ("CCM", "PCM", "BHI", "CoCM", "RPM", "RTM", "TCM", "APCM", "G0506")
ENROLLMENT_STATUSES = (
    "identified",
    "outreached",
    "reached",
    "consented",
    "enrolled",
    "declined",
    "disenrolled",
    "ineligible",
)

enrollment_event = Table(
    "enrollment_event",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("program", String(10), nullable=False, server_default="CCM"),
    Column("status", String(20), nullable=False),
    Column("reason", String(80)),  # decline / disenrollment / ineligible reason
    Column("event_date", Date, nullable=False),
    Column("staff_id", Integer, ForeignKey("staff.id")),
    Column("practitioner_id", Integer, ForeignKey("practitioner.id")),
    _batch(),
    Index("ix_enrollment_event_patient_date", "patient_id", "event_date"),
    Index("ix_enrollment_event_status_date", "status", "event_date"),
)

consent = Table(
    "consent",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False, index=True),
    Column("program", String(10), nullable=False, server_default="CCM"),
    Column("decision", String(10), nullable=False),  # accepted, declined
    Column("consent_date", Date),  # NULL = undated (an audit failure)
    Column("method", String(10)),  # verbal, written
    Column("staff_id", Integer, ForeignKey("staff.id")),  # who took it
    Column("practitioner_id", Integer, ForeignKey("practitioner.id")),  # billing practitioner it is tied to
    Column("disclosed_cost_sharing", Boolean, nullable=False, server_default="0"),
    Column("disclosed_one_practitioner", Boolean, nullable=False, server_default="0"),
    Column("disclosed_right_to_stop", Boolean, nullable=False, server_default="0"),
    Column("disclosed_info_sharing", Boolean, nullable=False, server_default="0"),
    Column("revoked_date", Date),
    Column("document_ref", String(200)),
    _batch(),
)

care_plan = Table(
    "care_plan",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("established_date", Date, nullable=False),
    Column("reviewed_date", Date),
    Column("shared_with_patient_date", Date),
    Column("signed_by_practitioner_id", Integer, ForeignKey("practitioner.id")),
    Column("covers_all_conditions", Boolean, nullable=False, server_default="1"),
    Column("has_measurable_goals", Boolean, nullable=False, server_default="1"),
    Column("electronic_access", Boolean, nullable=False, server_default="1"),
    Column("substantially_revised", Boolean, nullable=False, server_default="0"),
    _batch(),
    UniqueConstraint("patient_id", "version", name="uq_care_plan_patient_version"),
)

# Complex CCM (99487/99489) needs moderate/high MDM recorded for the month.
complexity_assessment = Table(
    "complexity_assessment",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("service_month", Integer, nullable=False),
    Column("mdm_level", String(10), nullable=False),  # moderate, high
    Column("practitioner_id", Integer, ForeignKey("practitioner.id")),
    _batch(),
    UniqueConstraint("patient_id", "service_month", name="uq_complexity_patient_month"),
)

time_entry = Table(
    "time_entry",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("staff_id", Integer, ForeignKey("staff.id"), nullable=False),
    Column("program", String(10), nullable=False, server_default="CCM"),
    Column("service_date", Date, nullable=False),
    Column("service_month", Integer, nullable=False),  # YYYYMM of service_date
    Column("started_at", DateTime),
    Column("ended_at", DateTime),  # started_at + minutes; lets SQL find the same minute under two programs
    Column("minutes", Integer, nullable=False),
    Column("activity", String(40), nullable=False),
    Column("note", Text),
    Column("practitioner_id", Integer, ForeignKey("practitioner.id")),  # billing practitioner
    Column("entry_method", String(12), nullable=False, server_default="realtime"),  # realtime, manual, batch, import
    Column("entered_at", DateTime),
    Column("interactive", Boolean, nullable=False, server_default="0"),
    _batch(),
    CheckConstraint("minutes >= 0", name="minutes_nonneg"),
    Index("ix_time_entry_month_patient", "service_month", "patient_id"),
    Index("ix_time_entry_patient_date", "patient_id", "service_date"),
    Index("ix_time_entry_month_staff", "service_month", "staff_id"),
)

# --------------------------------------------------------------------------- claims and money
claim = Table(
    "claim",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("claim_number", String(38), nullable=False, unique=True),  # our patient control number (CLP01)
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("practitioner_id", Integer, ForeignKey("practitioner.id"), nullable=False),  # billing NPI
    Column("clinic_id", Integer, ForeignKey("clinic.id")),
    Column("payer", String(60), nullable=False),
    Column("submitted_date", Date, nullable=False),
    Column("submitted_month", Integer, nullable=False),  # YYYYMM of submitted_date
    Money("total_charge", nullable=False),
    Column("frequency_code", String(1), nullable=False, server_default="1"),  # 1 original, 7 replacement
    Column("original_claim_id", Integer, ForeignKey("claim.id")),
    Column("place_of_service", String(2)),
    _batch(),
    Index("ix_claim_submitted_month", "submitted_month"),
    Index("ix_claim_patient", "patient_id"),
)

claim_line = Table(
    "claim_line",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("claim_id", Integer, ForeignKey("claim.id"), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("cpt_code", String(5), nullable=False),
    Column("modifier", String(8)),
    Column("units", Integer, nullable=False, server_default="1"),
    Money("charge", nullable=False),
    Column("service_date", Date, nullable=False),  # date of service
    Column("dos_month", Integer, nullable=False),  # YYYYMM of service_date
    # Denormalised from claim so patient-month joins need no extra hop.
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("practitioner_id", Integer, ForeignKey("practitioner.id"), nullable=False),
    Column("icd10_codes", String(80)),  # comma separated, normalised
    _batch(),
    UniqueConstraint("claim_id", "line_number", name="uq_claim_line_claim_line"),
    Index("ix_claim_line_month_patient", "dos_month", "patient_id"),
    Index("ix_claim_line_month_code", "dos_month", "cpt_code"),
)

remittance = Table(
    "remittance",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("claim_id", Integer, ForeignKey("claim.id"), index=True),  # NULL = unmatched
    Column("claim_number", String(38), nullable=False),  # CLP01 as received
    Column("payer", String(60)),
    Column("payer_claim_control_number", String(50)),  # CLP07
    Column("status_code", String(3), nullable=False),  # CLP02: 1 primary, 2 secondary, 4 denied, 22 reversal
    Money("total_charge"),
    Money("paid_amount", nullable=False),
    Money("patient_responsibility"),
    Column("received_date", Date, nullable=False),  # payment/production date of the 835
    Column("received_month", Integer, nullable=False),
    Column("check_number", String(50)),  # TRN02
    Column("adjudication_seq", Integer, nullable=False, server_default="1"),  # 1 = first adjudication
    Column("source_file", String(255)),
    _batch(),
    Index("ix_remittance_received_month", "received_month"),
)

remittance_line = Table(
    "remittance_line",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("remittance_id", Integer, ForeignKey("remittance.id"), nullable=False, index=True),
    Column("claim_line_id", Integer, ForeignKey("claim_line.id"), index=True),  # NULL = unmatched
    Column("cpt_code", String(5)),
    Column("modifier", String(8)),
    Column("units", Integer),
    Money("charge"),
    Money("allowed"),
    Money("paid", nullable=False),
    Column("service_date", Date),
    _batch(),
)

remittance_adjustment = Table(
    "remittance_adjustment",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("remittance_id", Integer, ForeignKey("remittance.id"), nullable=False, index=True),
    Column("remittance_line_id", Integer, ForeignKey("remittance_line.id"), index=True),  # NULL = claim level
    Column("group_code", String(2), nullable=False),  # CO, PR, OA, PI, CR
    Column("carc", String(5), nullable=False),
    Money("amount", nullable=False),
    Column("quantity", Integer),
    _batch(),
)

remittance_remark = Table(
    "remittance_remark",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("remittance_id", Integer, ForeignKey("remittance.id"), nullable=False, index=True),
    Column("remittance_line_id", Integer, ForeignKey("remittance_line.id")),
    Column("rarc", String(8), nullable=False),
    _batch(),
)

appeal = Table(
    "appeal",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(64), unique=True),
    Column("claim_id", Integer, ForeignKey("claim.id"), nullable=False, index=True),
    Column("claim_line_id", Integer, ForeignKey("claim_line.id")),
    Column("level", String(20), nullable=False),  # redetermination, reconsideration, ALJ, reopening
    Column("filed_date", Date, nullable=False),
    Column("outcome", String(12), nullable=False, server_default="pending"),  # pending, overturned, upheld, partial
    Column("outcome_date", Date),
    Money("amount_recovered"),
    _batch(),
)

# The biller's work on a denied or underpaid claim line (ccm_core.kpis.queues): one current status per line;
# every change is also written to the access log.
DENIAL_WORK_STATUSES = ("worked", "appealed", "written_off")
denial_work = Table(
    "denial_work",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("claim_line_id", Integer, ForeignKey("claim_line.id"), nullable=False, unique=True),
    Column("status", String(12), nullable=False),  # worked, appealed, written_off
    Column("note", Text),
    Column("updated_by", String(64), nullable=False),
    Column("updated_at", DateTime, nullable=False),
    CheckConstraint("status IN ('worked', 'appealed', 'written_off')", name="denial_work_status"),
)

# --------------------------------------------------------------------------- audit
audit_sample = Table(
    "audit_sample",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("month_from", Integer, nullable=False),
    Column("month_to", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("seed", Integer, nullable=False),
    Column("strata", Text),  # JSON: the stratification inputs, stored so a pull can be re-run
    Column("status", String(12), nullable=False, server_default="open"),
)

audit_sample_item = Table(
    "audit_sample_item",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sample_id", Integer, ForeignKey("audit_sample.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("patient_id", Integer, ForeignKey("patient.id"), nullable=False),
    Column("service_month", Integer, nullable=False),
    Column("stratum", String(100)),
    UniqueConstraint("sample_id", "patient_id", "service_month", name="uq_sample_item_pm"),
)

audit_finding = Table(
    "audit_finding",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sample_item_id", Integer, ForeignKey("audit_sample_item.id"), nullable=False, index=True),
    Column("item_key", String(40), nullable=False),  # checklist item
    Column("engine_result", String(4)),  # pass, fail, na: what the checklist said
    Column("verdict", String(10), nullable=False),  # agree, disagree
    Column("comment", Text),
    Column("auditor", String(64), nullable=False),
    Column("recorded_at", DateTime, nullable=False),
    UniqueConstraint("sample_item_id", "item_key", name="uq_finding_item_key"),
)

# --------------------------------------------------------------------------- billing exports
# Which months' ready-to-bill lists were exported for the billing system, by whom, when and how much.
billing_export = Table(
    "billing_export",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("service_month", Integer, nullable=False),
    Column("exported_by", String(64), nullable=False),
    Column("exported_at", DateTime, nullable=False),
    Column("patient_months", Integer, nullable=False),
    Money("expected_amount", nullable=False),
    Column("file_name", String(255), nullable=False),
    Index("ix_billing_export_month", "service_month"),
)

# --------------------------------------------------------------------------- access and operations
ROLES = ("admin", "program_lead", "auditor", "biller", "care_manager", "viewer")

app_user = Table(
    "app_user",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(120), nullable=False),
    Column("email", String(200)),
    Column("password_hash", String(100), nullable=False),  # bcrypt only
    Column("role", String(20), nullable=False),
    Column("staff_id", Integer, ForeignKey("staff.id")),  # a care manager sees their own worklist
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime),
    Column("created_at", DateTime),
    Column("last_login_at", DateTime),
)

# One row per sign-in.  The login cookie carries the random session id (only its SHA-256 is stored);
# every run checks the row is live, so sign-out, a password reset, a lockout, a deactivation or a role
# change ends a copied cookie as well as the open browser session (see ccm_core.security.auth, "sessions").
user_session = Table(
    "user_session",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("app_user.id"), nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Column("revoked_reason", String(40)),
)

access_log = Table(
    "access_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("username", String(64), nullable=False),
    Column("role", String(20)),
    Column("action", String(20), nullable=False),  # view, export, sample_pull, login, login_failed, import, reveal
    Column("page", String(80)),
    Column("detail", Text),
    Column("patient_count", Integer),
)

import_batch = Table(
    "import_batch",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(30), nullable=False),  # patients, time_entries, x12_835, ...
    Column("file_name", String(255), nullable=False),
    Column("file_sha256", String(64), nullable=False, index=True),
    Column("imported_by", String(64), nullable=False),
    Column("imported_at", DateTime, nullable=False),
    Column("rows_in", Integer, nullable=False, server_default="0"),
    Column("rows_written", Integer, nullable=False, server_default="0"),
    Column("rows_rejected", Integer, nullable=False, server_default="0"),
    Column("warnings", Text),
    Column("status", String(12), nullable=False, server_default="committed"),  # committed, reverted
    Column("reverted_at", DateTime),
    Column("reverted_by", String(64)),
)

# Prior values of rows an import updated, so reverting a batch restores them.
import_change = Table(
    "import_change",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", Integer, ForeignKey("import_batch.id"), nullable=False, index=True),
    Column("table_name", String(40), nullable=False),
    Column("row_id", Integer, nullable=False),
    Column("action", String(8), nullable=False),  # insert, update
    Column("before_json", Text),
)

setting = Table(
    "setting",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("value", Text, nullable=False),
)

meeting = Table(
    "meeting",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("held_on", Date, nullable=False, unique=True),
    Column("recorded_by", String(64)),
)

# One row; bumped by every import, revert or edit.  Caches key on it, so
# nothing is stale after an import and nothing is recomputed without one.
data_version = Table(
    "data_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime),
)

# Results one app process computed, for every process on the same database (ccm_core.storage.shared_results):
# a cache, not data, so it is written without a data version and never read by a cached computation.
result_cache = Table(
    "result_cache",
    metadata,
    Column("call_digest", String(64), primary_key=True),
    Column("reads", Text, nullable=False),  # JSON list of the tables the computation read
    Column("version", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("mac", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
)
