"""mlffbench plugin package for SchNet on torch-geometric's layers (PyTorch backend)."""
