"""The schema, migrations, the database connection, the stored tables and the write recorder."""
