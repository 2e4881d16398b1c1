"""Users: the people API access tokens act for."""
