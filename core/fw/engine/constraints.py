"""Constraints that contradict each other: refused when a request is admitted where that
can be seen, otherwise ended with an error at the step where no token is left.

A request can narrow its next token in several ways at once: allowed_token_ids, a
structured-output grammar, bad_words, and min_tokens (which bans EOS and the stop
tokens). When together they leave no token, the sampler used to draw from a row of
-inf anyway: the last vocabulary token, repeated at logprob -9999, one grammar warning
per token, and a 200. Now:

* ``check_admissible`` refuses what is visible before the first step: every allowed
  token banned outright by a one-token bad word, only EOS or stop tokens allowed under
  min_tokens, or no allowed token the grammar accepts first;
* ``no_token_error`` is what a request ends with when the sampler finds no token left
  for it at a later step: the runner records it as the step's failure for that request
  instead of the meaningless token (it reaches the client as a 400 or an error event).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from fw.engine.sampling_params import SamplingParams
from fw.errors import InvalidParameterError
from fw.structured.params import StructuredOutputsParams

if TYPE_CHECKING:
    import torch

    from fw.engine.request import Request


def check_admissible(params: SamplingParams, eos_token_ids: tuple[int, ...],
                     first_tokens: Callable[[StructuredOutputsParams], "torch.Tensor"] | None) -> None:
    """Raise InvalidParameterError when ``params`` can produce no first token.
    ``first_tokens``: a constraint's allowed first tokens as a bool [vocab] mask."""
    if params.allowed_token_ids is None:
        return
    banned = {word[0] for word in params._bad_words_token_ids if len(word) == 1}
    left = set(params.allowed_token_ids) - banned
    if not left:
        raise InvalidParameterError("allowed_token_ids", "every allowed token is also one of bad_words; "
                                                         "nothing could be generated")
    if params.min_tokens > 0 and left <= {*eos_token_ids, *params.stop_token_ids}:
        raise InvalidParameterError("allowed_token_ids", "only end-of-sequence and stop tokens are allowed, "
                                                         "which min_tokens forbids at first; nothing could be generated")
    constraint = params.structured_outputs
    if constraint is not None and first_tokens is not None:
        first = first_tokens(constraint)
        if not any(first[token] for token in left if token < first.shape[0]):
            raise InvalidParameterError(
                "allowed_token_ids", f"none of the allowed tokens can begin an output that "
                                     f"{constraint.param_name()} accepts; nothing could be generated")


def no_token_error(request: "Request") -> InvalidParameterError:
    """Why ``request`` has no token left at this step, naming the constraints in force."""
    params = request.params
    involved = []
    if params.allowed_token_ids is not None:
        involved.append("allowed_token_ids")
    if request.grammar is not None and request.grammar_active:
        involved.append(params.structured_outputs.param_name())
    if params._bad_words_token_ids:
        involved.append("bad_words")
    if request.num_output_tokens < params.min_tokens:
        involved.append("min_tokens")
    names = " and ".join(involved) or "the request's constraints"
    return InvalidParameterError(
        involved[0] if involved else "allowed_token_ids",
        f"after {request.num_output_tokens} generated tokens no token satisfies {names} together; "
        "the constraints contradict each other")

