"""Registers the built-in subcommands. Each target is imported only when it runs, so
`fw --help` stays fast and never imports torch."""

from fw import hookimpl


@hookimpl
def fw_register_commands(register):
    register("serve", "fw_builtins.commands.serve:serve",
             help="Start the OpenAI-compatible API server.")
    register("chat", "fw_builtins.commands.chat:chat",
             help="Chat with a running API server.")
    register("complete", "fw_builtins.commands.complete:complete",
             help="Complete prompts with a running API server.")
    register("bench", "fw_builtins.commands.bench:bench",
             help="Benchmark latency, throughput, or a running server.")
    register("run-batch", "fw_builtins.commands.run_batch:run_batch",
             help="Run a file of OpenAI batch requests through the engine.")
    register("collect-env", "fw_builtins.commands.collect_env:collect_env",
             help="Print environment information for bug reports.")
    register("plugins", "fw_builtins.commands.plugins_cmd:plugins",
             help="List installed plugins, their hooks and the names they register.")
    register("plugin", "fw_builtins.commands.plugin_cmd:plugin",
             help="Start a plugin project from fw's template: fw plugin new NAME --kind KIND.")
