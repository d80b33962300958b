"""ElasticFT: a Kubernetes operator for elastic, spot-aware fine-tuning jobs."""

__version__ = "0.1.0"
