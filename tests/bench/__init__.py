"""Benchmarks behind `make bench`: real servers, real workers, numbers printed with their method."""
