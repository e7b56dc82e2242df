"""The use cases: the catalog, runs, the write-behind writer, and the facade wiring them."""
