"""``python -m ccm_core import|batches|revert``: exit codes, output, progress bar, rejected-rows file."""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures_import.helpers import EXAMPLES, table_counts

from ccm_core import cli


@pytest.fixture(autouse=True)
def only_import_commands(monkeypatch):
    """The real ``main`` with only this feature's commands: other features' CLIs are tested by their owners."""
    monkeypatch.setattr(cli, "CLI_MODULES", ["ccm_core.io.imports"])


def main(argv):
    return cli.main(argv)


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_import_directory_list_batches_and_revert(engine, capsys):
    assert main(["import", "--db", _url(engine), "--user", "ops", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Imported.") and "time_entries.csv (time_entries): imported" in out
    assert main(["batches", "--db", _url(engine)]) == 0
    listing = capsys.readouterr().out
    assert "remittance.835" in listing and listing.count("committed") == 16 and "ops" in listing

    assert main(["revert", "--db", _url(engine), "--user", "ops", "4"]) == 1  # patients: others depend on them
    assert "refused: Batch 4 (patients.csv) cannot be reverted" in capsys.readouterr().err
    assert main(["revert", "--db", _url(engine), "--user", "ops", "16"]) == 0  # appeals: nothing depends on it
    assert "Batch 16 reverted: 1 inserted row(s) deleted" in capsys.readouterr().out
    assert table_counts(engine)["appeal"] == 0


def test_rejected_file_exits_non_zero_and_writes_nothing(engine, tmp_path, capsys):
    bad = tmp_path / "clinics.csv"
    bad.write_text("code,name,practice_name,place_of_service\nX1,Clinic,Practice,ABC\n")
    counts = table_counts(engine)
    assert main(["import", "--db", _url(engine), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "Nothing was imported" in out and "'ABC' is not a place-of-service code" in out
    assert table_counts(engine) == counts


def test_accept_valid_writes_the_rejected_rows_file(engine, tmp_path, capsys):
    src = tmp_path / "clinics.csv"
    src.write_text("code,name,practice_name,place_of_service\nX1,Clinic,Practice,ABC\nX2,Clinic 2,Practice,11\n")
    out_csv = tmp_path / "rejected.csv"
    rc = main(["import", "--db", _url(engine), "--accept-valid", "--rejected-out", str(out_csv), str(src)])
    assert rc == 1  # something was rejected, even though the valid row went in
    assert table_counts(engine)["clinic"] == 1
    rejected = pd.read_csv(out_csv, encoding="utf-8-sig", dtype=str)
    assert rejected[["row", "code"]].values.tolist() == [["2", "X1"]]
    assert "place_of_service" in rejected["problem"].item()


def test_progress_bar_on_stderr_for_long_files(engine, tmp_path, capsys):
    assert (
        main(
            [
                "import",
                "--db",
                _url(engine),
                str(EXAMPLES / "clinics.csv"),
                str(EXAMPLES / "practitioners.csv"),
                str(EXAMPLES / "staff.csv"),
                str(EXAMPLES / "patients.csv"),
            ]
        )
        == 0
    )
    rows = "".join(f"DX-{i},P100{i % 6 + 1},I10\n" for i in range(6000))
    big = tmp_path / "diagnoses.csv"
    big.write_text("external_id,mrn,icd10\n" + rows)
    capsys.readouterr()
    assert main(["import", "--db", _url(engine), str(big)]) == 0
    err = capsys.readouterr().err
    assert "diagnoses.csv: [" in err and "100% (6000/6000 rows)" in err


def test_missing_path_is_a_clear_error(engine, capsys):
    assert main(["import", "--db", _url(engine), "/no/such/file.csv"]) == 2
    assert "No such file: /no/such/file.csv" in capsys.readouterr().err
