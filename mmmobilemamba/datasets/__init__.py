"""Dataset helpers: toy data generators and a collate function; importing this package pulls in
nothing heavy."""
