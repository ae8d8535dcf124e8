"""Fused and memory-lean kernels (GroupNorm), each with a PyTorch fallback."""
