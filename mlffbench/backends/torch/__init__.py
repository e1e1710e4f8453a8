"""The PyTorch backend (imported only when a model with ``backend="torch"`` is built)."""
