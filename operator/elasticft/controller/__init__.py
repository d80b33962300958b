"""controller layer (docs/architecture.md)."""
