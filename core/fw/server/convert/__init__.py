"""Converters between another API's shapes and the chat pipeline's: a request becomes a
``ChatCompletionRequest`` (messages, tools, tool choice, sampling), the parsed outputs
become that API's response and stream events. One module per API and direction."""
