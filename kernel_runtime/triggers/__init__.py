"""When a product runs besides a direct request: schedules and events (pure rules, lineage, the engine)."""
