"""Neural network modules (stateless): backbones, pyramid, fusion, heads and the MASA adapter."""
