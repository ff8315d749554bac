"""rdpm-gddcm: training-free gDDCM image tokens from frozen diffusion models, and an RDPM-style
class-conditional generator over them. See SPEC §1-§9 (shared with the project) and README.md."""

__version__ = "0.1.0"
