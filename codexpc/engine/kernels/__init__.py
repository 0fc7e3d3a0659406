"""GPU kernels (Triton), each beside the plain PyTorch reference it must match."""
