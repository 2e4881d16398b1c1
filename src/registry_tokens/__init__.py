"""Self-hosted registry tokens, wire-compatible with Buildkite Package Registries."""

__version__ = "0.1.0"
