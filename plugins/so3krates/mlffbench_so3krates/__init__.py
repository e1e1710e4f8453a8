"""SO3krates for mlffbench: equivariant attention on invariant features and Euclidean variables (JAX)."""
