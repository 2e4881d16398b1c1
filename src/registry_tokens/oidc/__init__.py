"""OIDC: short-lived tokens from CI jobs (Buildkite agents, GitHub Actions, …) accepted
instead of stored secrets, under each registry's ``oidc_policy``."""
