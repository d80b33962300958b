"""The torchrun worker program of ElasticFT."""
