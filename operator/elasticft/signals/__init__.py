"""signals layer (docs/architecture.md)."""
