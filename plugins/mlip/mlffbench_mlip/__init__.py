"""MACE, NequIP and ViSNet from InstaDeep's mlip (JAX) as mlffbench model plugins."""
