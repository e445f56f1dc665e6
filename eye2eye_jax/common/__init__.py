"""Shared by every stage: atomic file writes, process set-up (compilation cache, multi-host),
device meshes and sharding rules, and the command-line flags the entry points share."""
