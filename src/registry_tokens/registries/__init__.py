"""Package registries: the things registry tokens open."""
