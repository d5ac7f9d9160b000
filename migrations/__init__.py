"""Alembic environment of stateful's SQL schema (``stateful.migrations`` when installed).

Run it through ``stateful migrate URL`` or `stateful.backends.sql.migrate_url`;
see ``env.py`` for using it with the ``alembic`` command directly.
"""
