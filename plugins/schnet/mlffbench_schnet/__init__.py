"""mlffbench plugin package for SchNet (the model arrives with its own issue)."""
