"""The contract model-architecture plugins follow."""
