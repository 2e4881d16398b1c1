"""The benchmark suite of issue 6: run it with bench/run (see bench/README.md)."""
