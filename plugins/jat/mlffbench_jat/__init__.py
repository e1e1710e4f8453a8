"""mlffbench plugin: JAT, the sparse graph attention network potential (JAX/Flax)."""
