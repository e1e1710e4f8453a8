"""ACE (atomic cluster expansion) for mlffbench: descriptors in JAX, a linear model fitted in closed form."""
