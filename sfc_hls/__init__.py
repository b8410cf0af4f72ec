"""sfc-hls: integer-exact fast convolution (SFC, Winograd, direct) from algorithm to RTL."""

__version__ = "0.1.0"
