"""The HTTP API: the Starlette app, its routes, and the documents it serves (OpenAPI, metrics)."""
