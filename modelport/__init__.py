"""modelport: Hugging Face model -> validated bundle, benchmarks and monitoring."""

__version__ = "0.1.0"
