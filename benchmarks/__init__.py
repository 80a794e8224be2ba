"""Benchmarks; results go to docs/benchmarks.md. Run each as `python -m benchmarks.<name>`."""
