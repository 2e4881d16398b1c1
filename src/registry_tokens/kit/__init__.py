"""Small shared pieces every domain uses: ids, secrets, time, errors, pagination."""
