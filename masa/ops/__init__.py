"""Pure tensor functions shared by tracking and modeling (no state, no nn.Module)."""
