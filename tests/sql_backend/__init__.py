"""Tests of the SQL backend on SQLite, PostgreSQL and MariaDB."""
