"""Unit tests of the informer, watch-event decoding and resource paths."""
