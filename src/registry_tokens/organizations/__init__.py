"""Organizations and who belongs to them."""
