"""PostgreSQL storage: schema migrations, the connection pool, batch writes, the named reads, retention."""
