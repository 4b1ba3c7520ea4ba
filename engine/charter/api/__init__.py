"""The HTTP service over the Charter library."""
