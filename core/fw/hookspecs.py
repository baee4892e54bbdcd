"""Every extension point of fw, as pluggy hook specifications.

This file is the hook reference: docs/hooks.md is checked against it by a test, so a hook
added here without documentation fails the suite.

Conventions:

* Every hook is prefixed ``fw_``.
* Registration hooks receive a ``register`` callback instead of returning values, so new
  keyword arguments can be added to ``register`` later without breaking any plugin.
* ``register(name, target, *, aliases=())``: ``target`` is either an import path
  ``"package.module:Attribute"`` (imported only when the name is first used, which keeps
  ``fw --help`` fast) or the object itself.
* Registration hooks run once per process, the first time fw needs that kind of name;
  each docstring says which process that is.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "fw"

#: Bumped when a hook's signature changes incompatibly; plugins may check it.
HOOK_API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- Command line ------------------------------------------------------------------------


@hookspec
def fw_register_commands(register):
    """Add subcommands to the ``fw`` command line.

    Called in the ``fw`` CLI process when the command group is first listed or invoked.

    :param register: ``register(name, target, *, help="", aliases=())`` where ``target``
        is ``"module:attribute"`` naming a ``click.Command`` (imported only when the
        command runs or shows its own help) and ``help`` is the one-line summary that
        ``fw --help`` prints without importing the command.
    """


# --- Models and weights --------------------------------------------------------------------


@hookspec
def fw_register_models(register):
    """Register model architectures.

    Called in the engine process when a model is loaded. ``name`` is the architecture
    string found in a Hugging Face ``config.json`` (``"LlamaForCausalLM"``); the target
    is a ``torch.nn.Module`` class built as ``cls(hf_config, context)`` (``context`` is a
    ``fw.models.interface.ModelContext``) that follows the contract in
    ``fw.models.interface``.

    :param register: ``register(architecture, target, *, aliases=())``.
    """


@hookspec
def fw_register_load_formats(register):
    """Register weight loaders, selectable with ``--load-format NAME``.

    Called in the engine process when a model is loaded. The target is a class
    following ``fw.model_loader.base.WeightLoader``: it says whether it can read a
    path, reads the model's config and tokenizer location, and yields named tensors.

    :param register: ``register(name, target, *, aliases=())``.
    """


@hookspec
def fw_register_quantization_methods(register):
    """Register quantization methods, selectable with ``--quantization NAME``.

    Called in the engine process when a model is built. The target is a class
    following ``fw.layers.quantization.QuantizationMethod``: it registers the
    parameters a checkpoint fills and packs them into a ``fw.layers.packed.PackedWeight``
    (one or more layouts, each with its kernel) that linear layers and the LM head run.

    :param register: ``register(name, target, *, aliases=())``.
    """


@hookspec
def fw_register_attention_backends(register):
    """Register attention backends, selectable with ``--attention-backend NAME``.

    Called in the engine process when the model runner starts. The target is a class
    following ``fw.attention.backend.AttentionBackend``; every backend reads and writes
    the same paged KV-cache layout, so the scheduler never knows which one runs. A
    backend whose attention fw's fused CPU decode may compute in its place says so
    with ``fused_cpu_decode = True``.

    :param register: ``register(name, target, *, aliases=())``.
    """


@hookspec
def fw_register_poolers(register):
    """Register poolers, selectable with ``--pooler-config '{"pooling_type": "NAME"}'``.

    Called in the engine process when a model is built for the pooling runner (or
    with ``--enable-embeddings``). The target is a class following
    ``fw.pooling.pooler.Pooler``: it turns the hidden states of a prompt's tokens
    into the one output the prompt gets (a vector, or one per token), for many prompts
    at once. Built-ins: ``MEAN``, ``CLS``, ``LAST``, ``ALL``.

    :param register: ``register(name, target, *, aliases=())``.
    """


# --- Output parsing and constrained decoding ---------------------------------------------


@hookspec
def fw_register_tool_parsers(register):
    """Register tool-call parsers, selectable with ``--tool-call-parser NAME``.

    Called in the API-server process at start-up. The target is a class following
    ``fw.parsing.tool_parser.ToolParser`` (incremental, with an end-of-stream flush).

    :param register: ``register(name, target, *, aliases=())``.
    """


@hookspec
def fw_register_reasoning_parsers(register):
    """Register reasoning parsers, selectable with ``--reasoning-parser NAME``.

    Called in the API-server process at start-up. The target is a class following
    ``fw.parsing.reasoning_parser.ReasoningParser``.

    :param register: ``register(name, target, *, aliases=())``.
    """


@hookspec
def fw_register_structured_output_backends(register):
    """Register structured-output (guided decoding) backends.

    Read at start-up (an unknown ``--guided-decoding-backend`` fails there) and in the
    engine process, which builds a backend when a constrained request first names it:
    ``--guided-decoding-backend NAME`` or a request's ``guided_decoding_backend``
    ("auto" tries xgrammar, then guidance). The target is a class following
    ``fw.structured.backend.StructuredOutputBackend``: it compiles a request's
    grammar and produces a token bitmask each step.

    :param register: ``register(name, target, *, aliases=())``.
    """


@hookspec
def fw_register_logits_processors(register):
    """Register logits processors, enabled with ``--logits-processors NAME``.

    Read in the engine process when it starts (and by ``fw serve``, which checks the names
    before it loads the engine). The target is a subclass of
    ``fw.logits_processors.LogitsProcessor``: given the requests that use it (per-request
    arguments come in ``vllm_xargs`` / ``SamplingParams.extra_args``), it changes their
    rows of each step's logits before penalties, temperature and truncation, in sampling
    and in speculative verification alike. Packages may instead list a class in the
    ``fw.logits_processors`` entry-point group, which enables it whenever it is installed.

    :param register: ``register(name, target, *, aliases=())``.
    """


@hookspec
def fw_register_proposers(register):
    """Register speculative-decoding proposers, selectable with
    ``--speculative-config.method NAME``.

    Read in the engine process when speculative decoding is configured. The target is
    a class following ``fw.speculative.proposer.Proposer``: each step it guesses the
    next tokens of running requests, which the model then checks in one forward pass
    (the engine keeps only what the model itself would have produced).

    :param register: ``register(name, target, *, aliases=())``.
    """


# --- HTTP server ---------------------------------------------------------------------------


@hookspec
def fw_asgi_middleware(app, config):
    """Wrap the server's ASGI application.

    Called once in the API-server process after the FastAPI app is built and before
    it starts serving. Return a new ASGI application wrapping ``app`` (or ``None`` to
    leave it as is). Wrappers from several plugins are applied in plugin order.

    :param app: the ASGI application built so far.
    :param config: the server's ``fw.config.ServeConfig``.
    """
