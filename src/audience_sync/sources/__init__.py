"""Where segment members come from: the built-in CDP (import, demo data) and, later, warehouses."""
