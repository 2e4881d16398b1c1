"""REST rate limits, Buildkite's way: fixed windows per organization and per user."""
