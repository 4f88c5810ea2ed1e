"""Residual Attention Network (Wang et al., CVPR 2017) replication on CIFAR-10/100."""

__version__ = "0.1.0"
