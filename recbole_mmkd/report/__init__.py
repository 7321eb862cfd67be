"""Reports over RunResults: leaderboards (significance tests and figures come later)."""
