"""What tests and benchmarks share: the local control plane, zen-watcher as a process or on a
thread, the upstream fixtures as payloads and reports, hand-built findings, audit Events and
filter cases, and the tools they need. Test modules import helpers from here, never from each
other."""
