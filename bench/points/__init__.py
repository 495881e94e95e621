"""Benchmark points: each measures one figure SCALING.md shows; none imports another."""
