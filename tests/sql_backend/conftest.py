"""Fixtures of the SQL backend tests: the databases (`tests.sql_backend.fixtures`) and the
installed wheel (`tests.packaging.conftest`)."""

from tests.packaging.conftest import installed_wheel  # noqa: F401
from tests.sql_backend.fixtures import (  # noqa: F401
    mariadb_store_factory,
    mysql_url,
    postgres_url,
    postgresql_store_factory,
    private_prefix,
    sql_url,
    sqlite_file_url,
    sqlite_store_factory,
)
