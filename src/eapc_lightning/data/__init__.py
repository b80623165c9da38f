"""Datasets, the feature cache and the LightningDataModules."""
