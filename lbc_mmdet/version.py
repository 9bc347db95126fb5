"""The package version (a module of its own: any layer may read it)."""
__version__ = '0.4.0'
