"""The event pipeline stages between mapping and writing: filters, then dedup."""
