"""Sweeps: expanding a study file into runs, planning against the store, executing runs."""
