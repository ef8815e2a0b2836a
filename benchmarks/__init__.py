"""Benchmarks: `make bench` (not part of `make test`). Never touches the network."""
