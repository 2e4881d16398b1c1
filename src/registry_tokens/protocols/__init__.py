"""The package-client protocols: one module per ecosystem, plain Starlette routes."""
