"""MACE (Batatia et al. 2022) for mlffbench, on mace-torch's own modules."""
