"""The networks: plain ``nn.Module``s, each rebuilt from a typed config saved with its artifact."""
