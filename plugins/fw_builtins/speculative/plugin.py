"""Registers the built-in proposers: n-gram prompt lookup, suffix decoding, a draft model."""

from __future__ import annotations

from fw import hookimpl


@hookimpl
def fw_register_proposers(register):
    register("ngram", "fw_builtins.speculative.ngram:NgramProposer", aliases=("[ngram]",))
    register("suffix", "fw_builtins.speculative.suffix:SuffixProposer")
    register("draft_model", "fw_builtins.speculative.draft_model:DraftModelProposer", aliases=("draft",))
