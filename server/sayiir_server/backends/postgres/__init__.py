"""The PostgreSQL store: several stateless server replicas on one database.

postgresql://user[:password]@host:port/db[?pool_min=1&pool_max=10&connect_timeout=5&command_timeout=10&...]
(options: sayiir_server.backends.postgres.options.PostgresOptions).
"""

from sayiir_server.backends.postgres.backend import PostgresStore
from sayiir_server.backends.postgres.options import PostgresOptions

__all__ = ["PostgresOptions", "PostgresStore"]
