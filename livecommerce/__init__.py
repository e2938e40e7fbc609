"""livecommerce: a self-hostable live-commerce streaming server."""

__version__ = "0.1.0"
