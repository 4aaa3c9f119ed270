"""Cards for the datasets and architectures mlsel's bundled knowledge comes from."""
