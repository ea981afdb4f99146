"""Test-only stand-ins for host networks (our own implementations with the host's module names)."""
