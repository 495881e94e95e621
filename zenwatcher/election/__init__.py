"""Lease-based leader election: pure lease arithmetic (`record`) and the elector (`elector`)."""
