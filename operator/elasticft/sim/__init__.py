"""sim layer (docs/architecture.md)."""
