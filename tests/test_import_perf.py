"""Performance: 100,000 time entries import in under a minute on SQLite (measured, printed)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fixtures_import.helpers import TODAY, table_counts

from ccm_core.io.imports import Source, import_files
from ccm_core.io.imports.parse import npi_check_digit
from ccm_core.storage import db

N_ENTRIES = 100_000
N_PATIENTS = 2_000


def _master() -> list[Source]:
    npi = "123456789" + npi_check_digit("123456789")
    patients = "mrn,first_name,last_name,birth_date,payer,clinic_code,billing_practitioner_npi\n" + "".join(
        f"M{i:06d},F{i},L{i},1950-01-01,Medicare Part B,C1,{npi}\n" for i in range(N_PATIENTS)
    )
    staff = "external_id,first_name,last_name,credential,is_clinical,role\n" + "".join(
        f"S{i},F{i},L{i},RN,yes,care_manager\n" for i in range(20)
    )
    return [
        Source("clinics.csv", b"code,name,practice_name\nC1,Clinic One,Perf Practice\n"),
        Source("practitioners.csv", f"npi,first_name,last_name,credential\n{npi},A,B,MD\n".encode()),
        Source("staff.csv", staff.encode()),
        Source("patients.csv", patients.encode()),
    ]


def _time_entries(seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    month = rng.integers(1, 11, N_ENTRIES)
    day = rng.integers(1, 29, N_ENTRIES)
    hour = rng.integers(8, 17, N_ENTRIES)
    minute = rng.integers(0, 60, N_ENTRIES)
    rows = [
        f"TE{i:07d},M{p:06d},S{s},CCM,2026-{mo:02d}-{d:02d},{h:02d}:{mi:02d},{m},call,Checked symptoms\n"
        for i, p, s, mo, d, h, mi, m in zip(
            range(N_ENTRIES),
            rng.integers(0, N_PATIENTS, N_ENTRIES),
            rng.integers(0, 20, N_ENTRIES),
            month,
            day,
            hour,
            minute,
            rng.integers(2, 41, N_ENTRIES),
        )
    ]
    head = "external_id,mrn,staff_external_id,program,service_date,started_at,minutes,activity,note\n"
    return (head + "".join(rows)).encode()


@pytest.mark.slow
def test_100k_time_entries_import_in_under_a_minute_on_sqlite(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'perf.db'}")
    db.upgrade(engine)
    assert import_files(engine, _master(), user="perf", today=TODAY).committed
    data = _time_entries()
    t0 = time.perf_counter()
    result = import_files(engine, [Source("time_entries.csv", data)], user="perf", today=TODAY)
    first = time.perf_counter() - t0
    assert result.committed and result.files[0].inserted == N_ENTRIES, result.summary()
    assert table_counts(engine)["time_entry"] == N_ENTRIES
    t0 = time.perf_counter()
    again = import_files(engine, [Source("time_entries.csv", data)], user="perf", today=TODAY)
    second = time.perf_counter() - t0
    assert again.files[0].unchanged == N_ENTRIES and not again.committed
    print(f"\n100k time entries on SQLite: first import {first:.1f} s, unchanged re-import {second:.1f} s")
    assert first < 60 and second < 60
    engine.dispose()
