"""mlffbench plugin package for NeuralIL (the model arrives with its own issue)."""
