"""The nightly publication: page data (pure), rendering, and an atomic release."""

from .site import PublishResult, publish

__all__ = ["PublishResult", "publish"]
