"""Registry tokens: read-only credentials that install packages from one registry."""
