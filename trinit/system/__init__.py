"""The only place with syscalls: the OS layer, the reaper, credentials and environment."""
