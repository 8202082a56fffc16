"""`python -m bench` (`make bench`): faceverify's speed figures, side by side, written to bench/RESULTS.md."""
