"""Leak response: reports of tokens found in public, in GitHub's secret scanning form."""
