"""Pure domain code: enums, value types, normalization, hashing, planning (no DB, HTTP)."""
