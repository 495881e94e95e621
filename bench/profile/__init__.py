"""Profilers: where the daemon's time goes, under load (py-spy) and in process (cProfile)."""
