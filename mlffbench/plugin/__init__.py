"""Plugins: the hooks, the manager that loads them, the specs they register."""
