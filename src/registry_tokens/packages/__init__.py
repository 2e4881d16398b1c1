"""Python packages: publishing, listing, and installing them with pip."""
