"""signals layer (see DESIGN §2)."""
