//! PostgreSQL backend (below).
