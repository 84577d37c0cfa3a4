"""Example teleservices built on cardauth (not installed with the package)."""
