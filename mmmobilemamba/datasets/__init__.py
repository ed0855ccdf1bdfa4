"""Dataset helpers (toy data generators); importing this package pulls in nothing heavy."""
