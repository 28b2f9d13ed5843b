"""CoMeT toolkit: the command line and the application around the memory model."""

__version__ = "0.1.0"
