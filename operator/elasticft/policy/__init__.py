"""policy layer (see DESIGN §2)."""
