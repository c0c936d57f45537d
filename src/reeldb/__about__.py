"""Version of the reeldb package."""

__version__ = "0.1.0"
