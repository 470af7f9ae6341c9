"""esafety: a self-hosted online-safety platform for schools."""

__version__ = "0.1.0"
