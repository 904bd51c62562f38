"""Benchmarks of Distill's parts, each in its own package (see bench/README.md)."""
