"""zen-watcher: security and compliance signals in, Observation custom resources out."""

__version__ = "0.1.0"
