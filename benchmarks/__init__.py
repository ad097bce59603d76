"""Speed and memory measurements: commands that print tables (run them with `make benchmark`)."""
