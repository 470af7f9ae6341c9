"""Filtering: hostnames and URLs, list formats, categories, policies and decisions."""
