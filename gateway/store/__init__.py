"""The log store: DuckDB tables, their migrations, and the durable write path into them."""
