"""Informers: list and watch one resource, resuming by resourceVersion (client-go reflector)."""
