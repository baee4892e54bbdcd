"""Pooling: one output per prompt (an embedding, class probabilities, per-token hidden
states) from the hidden states of its tokens. Requests carry ``PoolingParams``, poolers are
plugins (``fw_register_poolers``), and ``setup`` decides what a model's pooling runner does."""
