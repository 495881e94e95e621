"""What the elected leader does, one leadership term at a time (`term`): the report controller
(`report_controller`) and garbage collection of expired Observations (`gc`), sharing what the
daemon built once (`context`). Who leads is decided by `zenwatcher.election`."""
