"""Herald: a self-hostable real-time notification service."""

__version__ = "0.1.0"
