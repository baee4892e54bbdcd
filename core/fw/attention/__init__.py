"""The attention-backend interface and the paged KV-cache layout every backend shares."""
