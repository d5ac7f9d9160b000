"""Storage adapters, one module or package each; chosen by URL scheme in `stateful.registry`."""
