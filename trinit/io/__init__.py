"""Output: writer threads, output pumps, trinit's own log."""
