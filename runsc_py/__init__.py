"""runsc-py: an OCI runtime in Python with gVisor's sandbox + gofer process model."""

__version__ = "0.1.0"
