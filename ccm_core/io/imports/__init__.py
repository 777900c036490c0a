"""Data in: CSV/Excel files for every table, X12 835 remittances, validation, batches and revert.

Public API (ccm_core never imports streamlit; the Import page calls these):

* ``import_files(engine, sources, user=, kind=None, accept_valid=False, dry_run=False)`` -> ``ImportRun``
* ``revert_batch(engine, batch_id, user)``, ``list_batches(engine)`` and ``import_history(engine)``
* ``KINDS`` / ``ORDER``: the documented formats (docs/import-format.md) in dependency order
* ``add_cli(subparsers)``: ``import``, ``batches`` and ``revert`` commands
"""

from __future__ import annotations

from ccm_core.io.imports.cli import add_cli
from ccm_core.io.imports.reader import ImportFileError
from ccm_core.io.imports.runner import FileResult, ImportRun, Source, import_file, import_files, preview, problems_csv
from ccm_core.io.imports.specs import KINDS, ORDER, X12_KIND, format_reference_markdown
from ccm_core.io.imports.store import RevertRefused, import_history, list_batches, revert_batch

__all__ = [
    "FileResult",
    "ImportFileError",
    "ImportRun",
    "KINDS",
    "ORDER",
    "RevertRefused",
    "Source",
    "X12_KIND",
    "add_cli",
    "format_reference_markdown",
    "import_file",
    "import_files",
    "import_history",
    "list_batches",
    "preview",
    "problems_csv",
    "revert_batch",
]
