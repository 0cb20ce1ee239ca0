"""The goals HTTP edge: thin routes, request/response schemas, dependencies, error mapping."""
