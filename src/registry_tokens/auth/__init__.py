"""Who is calling: API access tokens, scopes, the request's caller."""
