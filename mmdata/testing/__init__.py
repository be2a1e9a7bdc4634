"""Generators of test media and small servers, shared by tests, benchmarks and the demo."""
