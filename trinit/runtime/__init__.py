"""The supervisor runtime on trio: bootstrap, supervisor, runners, policies, readiness, shutdown."""
