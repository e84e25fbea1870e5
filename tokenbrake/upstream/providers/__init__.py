"""Upstream providers: one class per wire format, behind the narrow `Provider` interface."""

from tokenbrake.upstream.providers.base import Provider, UpstreamFailure, UpstreamStream, build_providers

__all__ = ["Provider", "UpstreamFailure", "UpstreamStream", "build_providers"]
