"""Finding a model on disk and the contract weight-loader plugins follow."""
