"""sim layer (see DESIGN §2)."""
