"""Chat templates: turning OpenAI-style messages into the prompt text a model expects.

Shared by the API server and the offline ``LLM.chat``::

    from fw.chat import render_chat
    prompt = render_chat(tokenizer, [{"role": "user", "content": "Hi"}])
"""

from fw.chat.render import render_chat
from fw.chat.template import load_chat_template, resolve_chat_template

__all__ = ["load_chat_template", "render_chat", "resolve_chat_template"]
