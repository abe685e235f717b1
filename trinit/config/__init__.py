"""The config front end, strictly one-way: load → validate → frozen model → graph → plan → render."""
