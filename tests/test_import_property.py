"""Property: random corruption of a valid file never leaves a partial batch and never raises.

Either the run commits (and the tables grew by exactly what it reports, and
reverting its batches puts every count back), or nothing changed at all.
"""

from __future__ import annotations

import pytest
from fixtures_import.helpers import EXAMPLES, SAMPLES, TODAY, import_master, run, table_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccm_core.io.imports import revert_batch

BASES = {
    "time_entries.csv": (EXAMPLES / "time_entries.csv").read_bytes(),
    "claims.csv": (EXAMPLES / "claims.csv").read_bytes(),
    "remit.835": (SAMPLES / "lfh-managed-care.835").read_bytes(),
}

corruption = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("dup_line"), st.integers(0, 10**6), st.just(0)),
)


def corrupt(data: bytes, ops) -> bytes:
    for op, pos, arg in ops:
        if not data:
            break
        i = pos % len(data)
        if op == "flip":
            data = data[:i] + bytes([data[i] ^ arg]) + data[i + 1 :]
        elif op == "delete":
            data = data[:i] + data[i + arg :]
        elif op == "insert":
            data = data[:i] + arg + data[i:]
        elif op == "truncate":
            data = data[:i]
        else:
            lines = data.split(b"\n")
            j = pos % len(lines)
            data = b"\n".join(lines[: j + 1] + lines[j:])
    return data


@pytest.mark.parametrize("name", sorted(BASES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(corruption, min_size=1, max_size=3))
def test_corrupted_file_is_all_or_nothing(engine, name, ops):
    if table_counts(engine)["patient"] == 0:
        import_master(engine)
    before = table_counts(engine)
    data = corrupt(BASES[name], ops)
    result = run(engine, {name: data}, accept_valid=False, today=TODAY)  # must not raise
    assert "internal error" not in result.message, result.summary()
    after = table_counts(engine)
    if not result.committed:
        assert after == before, result.summary()
        assert all(f.batch_id is None for f in result.files)
        return
    assert result.ok
    # ("setting" holds bookkeeping: the store's state and the per-table data versions)
    grown = {t: after[t] - before[t] for t in after if after[t] != before[t] and t != "setting"}
    reported = {}
    for f in result.files:
        for table, c in f.counts.items():
            if c.inserted:
                reported[table] = reported.get(table, 0) + c.inserted
    reported["import_batch"] = len(result.batch_ids)
    changes = sum(c.inserted + c.updated for f in result.files for c in f.counts.values())
    reported["import_change"] = changes
    assert grown == reported, result.summary()
    for batch_id in reversed(result.batch_ids):
        revert_batch(engine, batch_id, "tester")
    restored = table_counts(engine)
    bookkeeping = ("import_batch", "import_change", "setting")
    assert {t: restored[t] for t in restored if t not in bookkeeping} == {
        t: before[t] for t in before if t not in bookkeeping
    }
