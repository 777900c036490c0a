"""Alembic environment: runs on the connection ``ccm_core.storage.db.upgrade`` hands in,
or on the URL in the config (``alembic -x`` style use from the command line)."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from ccm_core.storage.schema import metadata

config = context.config


def _include_object(obj, name, type_, reflected, compare_to) -> bool:
    """The stored patient-month is derived data that ``ccm_core.storage.stored`` creates and rebuilds itself
    (its columns follow the billing codes in the rules): never a migration's business."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return getattr(table, "name", name) not in (
        "patient_month_store",
        "enrolled_month_store",
        "claim_store",
        "eligible_month_store",
    )


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=_include_object,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs need batch mode
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


conn = config.attributes.get("connection")
if conn is not None:
    _run(conn)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as c:
        _run(c)
