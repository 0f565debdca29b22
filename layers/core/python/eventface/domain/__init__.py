"""The domain: entities, value objects, rules and errors (standard library only, no I/O)."""
