"""End to end: the whole platform started as a user starts it, driven as a user drives it."""
