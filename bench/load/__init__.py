"""Shared load tools: the pinned daemon and control plane, load generators, capacity ladders."""
