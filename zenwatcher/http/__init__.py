"""The HTTP edge: webhook listener (every pod) and metrics/probes listener."""
