"""The cluster harness tests and benchmarks share: the local control plane, zen-watcher as a
process, the upstream fixtures as payloads and reports, and the tools they need."""
