"""controller layer (see DESIGN §2)."""
