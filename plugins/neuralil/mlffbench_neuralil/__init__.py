"""mlffbench plugin package for NeuralIL: spherical Bessel descriptors + MLP + Morse (JAX/Flax)."""
