"""Autan's tests: they mirror the packages; e2e/ drives the whole platform."""
