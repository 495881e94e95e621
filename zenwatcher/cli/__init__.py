"""The `zen-watcher` command line: `main` parses it and starts the daemon or `convert`."""
