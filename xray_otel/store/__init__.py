"""PostgreSQL storage: schema migrations, the connection pool, batch writes."""
