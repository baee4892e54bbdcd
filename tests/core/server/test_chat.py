"""/v1/chat/completions: templates, streaming deltas, logprobs, echo, options."""

from __future__ import annotations

import re

import openai
import pytest

from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import sse_events

HI = [{"role": "user", "content": "hi"}]


def last_prompt(live) -> str:
    return live.engine.requests[-1][1]["prompt"]


def test_chat_answer_and_usage(server):
    result = server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=5)
    choice = result.choices[0]
    assert choice.message.role == "assistant" and len(choice.message.content) == 5
    assert choice.finish_reason == "length" and result.id.startswith("chatcmpl-")
    assert last_prompt(server) == "<|user|>hi\n<|assistant|>"
    assert result.usage.prompt_tokens == len("<|user|>hi\n<|assistant|>")  # no BOS by default
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_streaming_deltas_match_and_role_comes_first(server):
    client = server.openai()
    full = client.chat.completions.create(model="fake-model", messages=HI, max_tokens=9, temperature=0)
    chunks = list(client.chat.completions.create(model="fake-model", messages=HI, max_tokens=9, temperature=0,
                                                 stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == full.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stream_usage_chunk_and_done(server):
    with server.http() as http:
        events = sse_events(http.post("/v1/chat/completions", json={
            "messages": HI, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}}))
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 3
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(e["usage"] is None for e in events[:-2])  # usage so far only when asked (continuous_usage_stats)


def test_n_choices_stream_with_indices(server):
    chunks = list(server.openai().chat.completions.create(model="fake-model", messages=HI, n=3, max_tokens=4,
                                                          stream=True))
    texts: dict[int, str] = {}
    roles = set()
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.delta.role:
                roles.add(choice.index)
    assert roles == {0, 1, 2}
    assert sorted(texts) == [0, 1, 2] and all(len(t) == 4 for t in texts.values())


def test_logprobs_in_chat_shape(server):
    result = server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=3, logprobs=True,
                                                     top_logprobs=2)
    content = result.choices[0].logprobs.content
    assert len(content) == 3
    assert "".join(entry.token for entry in content) == result.choices[0].message.content
    for entry in content:
        assert entry.bytes == list(entry.token.encode())
        assert len(entry.top_logprobs) == 2 and entry.top_logprobs[0].token == entry.token
    chunks = list(server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=3,
                                                          logprobs=True, top_logprobs=1, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert len(streamed) == 3


def most_likely_first(position: dict) -> list:
    """A position's (token id, Logprob) pairs in OpenAI's order of top_logprobs."""
    return sorted(position.items(), key=lambda item: -item[1].logprob)


def openai_token(text: str, logprob: float) -> dict:
    """A token of a chat logprobs entry as OpenAI defines it: its text, its logprob and its
    UTF-8 bytes."""
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("top, stop", [(None, None), (3, None), (3, ["zzz"])],
                         ids=["no alternatives", "3 alternatives", "text held back"])
def test_chat_logprobs_are_the_engines_in_openais_shape(server, stream, top, stop):
    """Every token's, also while the engine holds its text back (it may start a stop string)."""
    client = server.openai()
    ask = dict(model="fake-model", messages=HI, max_tokens=4, logprobs=True, top_logprobs=top, stop=stop)
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **ask))
        content = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    else:
        content = client.chat.completions.create(**ask).choices[0].logprobs.content
    generated = server.engine.generated(server.engine.requests[-1][0])
    assert len(content) == len(generated) == 4
    for entry, (token, position) in zip(content, generated):
        chosen = position[token]
        assert entry.model_dump(exclude={"top_logprobs"}) == openai_token(chosen.decoded_token, chosen.logprob)
        assert [t.model_dump() for t in entry.top_logprobs] == [
            openai_token(lp.decoded_token, lp.logprob) for _, lp in most_likely_first(position)[:top or 0]]


def test_chat_logprobs_as_token_ids_name_the_generated_tokens(server):
    result = server.openai().chat.completions.create(
        model="fake-model", messages=HI, max_tokens=4, logprobs=True, top_logprobs=2,
        extra_body={"return_tokens_as_token_ids": True})
    content = result.choices[0].logprobs.content
    generated = server.engine.generated(server.engine.requests[-1][0])
    assert [e.token for e in content] == [f"token_id:{token}" for token, _ in generated]
    ids = [int(e.token.removeprefix("token_id:")) for e in content]
    assert server.engine.tokenizer.decode(ids) == result.choices[0].message.content
    for entry, (_, position) in zip(content, generated):
        assert entry.bytes == list(entry.token.encode("utf-8"))
        assert [t.token for t in entry.top_logprobs] == [f"token_id:{tid}" for tid, _ in most_likely_first(position)[:2]]
        assert [t.bytes for t in entry.top_logprobs] == [list(t.token.encode("utf-8")) for t in entry.top_logprobs]


def test_top_logprobs_needs_logprobs(server):
    with pytest.raises(openai.BadRequestError) as err:
        server.openai().chat.completions.create(model="fake-model", messages=HI, top_logprobs=2)
    assert err.value.body["param"] == "top_logprobs"
    assert re.search(r"\brequires logprobs=true\b", err.value.body["message"])


def test_stream_options_need_a_stream(server):
    with pytest.raises(openai.BadRequestError) as err:
        server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=2,
                                                stream_options={"include_usage": True})
    assert err.value.body["param"] == "stream_options"
    assert re.search(r"\bonly allowed when stream is true\b", err.value.body["message"])


def test_the_text_modality_is_the_one_served(server):
    result = server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=2,
                                                     modalities=["text"])
    assert len(result.choices[0].message.content) == 2
    with pytest.raises(openai.BadRequestError) as err:
        server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=2,
                                                modalities=["text", "audio"])
    assert err.value.body["param"] == "modalities"
    assert re.search(r"\bonly the text modality\b", err.value.body["message"])


def test_echo_prepends_the_last_message_of_the_same_role(server):
    messages = HI + [{"role": "assistant", "content": "Sure,"}]
    client = server.openai()
    result = client.chat.completions.create(model="fake-model", messages=messages, max_tokens=3,
                                            extra_body={"echo": True, "add_generation_prompt": False,
                                                        "continue_final_message": True})
    assert result.choices[0].message.content.startswith("Sure,")
    assert last_prompt(server) == "<|user|>hi\n<|assistant|>Sure,"
    chunks = list(client.chat.completions.create(
        model="fake-model", messages=messages, max_tokens=3, stream=True,
        extra_body={"echo": True, "add_generation_prompt": False, "continue_final_message": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == result.choices[0].message.content


def test_role_without_generation_prompt_is_the_last_messages(server):
    result = server.openai().chat.completions.create(
        model="fake-model", messages=HI, max_tokens=1, extra_body={"add_generation_prompt": False})
    assert result.choices[0].message.role == "user"
    assert last_prompt(server) == "<|user|>hi\n"
    assert len(result.choices[0].message.content) == 1  # the last message is echoed only when asked


def test_response_role_option(start_server):
    live = start_server(response_role="bot")
    result = live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1)
    assert result.choices[0].message.role == "bot"


def test_add_special_tokens_adds_bos(server):
    server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1,
                                            extra_body={"add_special_tokens": True})
    assert server.engine.requests[-1][1]["prompt_token_ids"][0] == 0


def test_chat_template_kwargs_and_documents(start_server):
    template = ("{{ greeting }}|{% for d in documents or [] %}[{{ d.title }}]{% endfor %}"
                "{% for m in messages %}{{ m.content }}{% endfor %}")
    live = start_server(chat_template=template)
    live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1, extra_body={
        "chat_template_kwargs": {"greeting": "hey"}, "documents": [{"title": "doc1", "text": "t"}]})
    assert last_prompt(live) == "hey|[doc1]hi"


def test_chat_template_option_inline_and_file(start_server, tmp_path):
    live = start_server(chat_template="{% for m in messages %}<{{ m.role }}>{{ m.content }}\\n{% endfor %}")
    live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1)
    assert last_prompt(live) == "<user>hi\n"
    path = tmp_path / "t.jinja"
    path.write_text("FILE:{{ messages[0].content }}")
    live = start_server(chat_template=str(path))
    live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1)
    assert last_prompt(live) == "FILE:hi"


def test_model_template_from_engine_wins_over_the_tokenizers(start_server):
    live = start_server(FakeEngine(model_chat_template="GGUF:{{ messages[0].content }}"))
    live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1)
    assert last_prompt(live) == "GGUF:hi"


def test_request_chat_template_needs_trust(start_server):
    live = start_server()
    with pytest.raises(openai.BadRequestError) as err:
        live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1,
                                              extra_body={"chat_template": "X{{ messages[0].content }}"})
    assert err.value.body["param"] == "chat_template"
    assert "--trust-request-chat-template" in err.value.body["message"]
    trusted = start_server(trust_request_chat_template=True)
    trusted.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1,
                                             extra_body={"chat_template": "X{{ messages[0].content }}"})
    assert last_prompt(trusted) == "Xhi"


def test_model_without_template_gives_a_clear_400(start_server):
    live = start_server(FakeEngine(chat_template=None))
    with pytest.raises(openai.BadRequestError) as err:
        live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1)
    assert "no chat template" in err.value.body["message"] and "--chat-template" in err.value.body["message"]


def test_content_parts_and_content_format(start_server):
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    live = start_server()
    live.openai().chat.completions.create(model="fake-model", messages=parts, max_tokens=1)
    assert last_prompt(live) == "<|user|>a\nb\n<|assistant|>"
    looping = "{% for m in messages %}{% for p in m.content %}({{ p.text }}){% endfor %}{% endfor %}"
    live = start_server(chat_template=looping)
    live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1)
    assert last_prompt(live) == "(hi)"  # auto: the template loops over parts, so a string becomes one
    live = start_server(chat_template="{% for m in messages %}{{ m.content }}{% endfor %}",
                        chat_template_content_format="openai")
    live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=1)
    assert "'text': 'hi'" in last_prompt(live)


def test_image_parts_are_not_supported(server):
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    with pytest.raises(openai.BadRequestError) as err:
        server.openai().chat.completions.create(model="fake-model", messages=messages, max_tokens=1)
    assert err.value.body["code"] == "not_supported"


def test_auto_tool_choice_needs_the_flags_and_none_renders_the_tools(start_server):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    live = start_server(chat_template="{{ tools[0].function.name }}:{{ messages[0].content }}")
    with pytest.raises(openai.BadRequestError) as err:
        live.openai().chat.completions.create(model="fake-model", messages=HI, tools=tools, max_tokens=1)
    assert err.value.body["param"] == "tool_choice"
    assert "--enable-auto-tool-choice" in err.value.body["message"]
    assert "--tool-call-parser" in err.value.body["message"]
    live.openai().chat.completions.create(model="fake-model", messages=HI, tools=tools, tool_choice="none",
                                          max_tokens=1)
    assert last_prompt(live) == "f:hi"


def test_max_completion_tokens_wins(server):
    result = server.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=9,
                                                     max_completion_tokens=2)
    assert result.usage.completion_tokens == 2


def test_default_max_tokens_fill_the_context(start_server):
    live = start_server(FakeEngine(max_model_len=40))
    result = live.openai().chat.completions.create(model="fake-model", messages=HI)
    assert result.usage.total_tokens == 40


def streamed_choices(chunks) -> dict[int, dict]:
    """Per choice index: its streamed content, reasoning, and the last finish and stop reasons."""
    choices: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            seen = choices.setdefault(choice.index, {"content": "", "reasoning": "", "finish_reason": None,
                                                     "stop_reason": None})
            seen["content"] += choice.delta.content or ""
            seen["reasoning"] += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            if choice.finish_reason is not None:
                seen["finish_reason"] = choice.finish_reason
                seen["stop_reason"] = choice.model_extra.get("stop_reason")
    return choices


@pytest.mark.parametrize("parser, pieces, expected", [
    # an engine step whose text is held back (an incomplete character, a possible stop
    # string) for one choice while the other goes on; the last step holds nothing back
    (None, [["Hel", "", "lo", ""], ["Wor", "ld", "!"]], [("Hello", ""), ("World!", "")]),
    # the reasoning parser holds back "<th" (it may open <think>) for one choice only
    ("qwen3", [["<th", "ink>Hm", "</think>Yes"], ["No", " way", "."]], [("Yes", "Hm"), ("No way.", "")]),
], ids=["engine holds back", "parser holds back"])
def test_each_choice_streams_all_its_text_whatever_the_others_hold_back(start_server, parser, pieces, expected):
    from tests.core.server.scripted_engine import ScriptedEngine

    live = start_server(ScriptedEngine(choices=pieces), reasoning_parser=parser)
    client = live.openai()
    whole = client.chat.completions.create(model="fake-model", messages=HI, n=2)
    streamed = streamed_choices(client.chat.completions.create(model="fake-model", messages=HI, n=2, stream=True))
    for choice, (content, reasoning) in zip(whole.choices, expected):
        assert (choice.message.content, choice.message.model_extra.get("reasoning_content") or "") == (content, reasoning)
        assert streamed[choice.index] == {"content": content, "reasoning": reasoning, "finish_reason": "stop",
                                          "stop_reason": None}


@pytest.mark.parametrize("stop", ["string", "token"])
def test_a_streamed_answer_ends_with_its_finish_and_stop_reason(server, stop):
    """vLLM's stop_reason: the stop string or token id that ended the choice, in the last
    chunk as in the whole response; a stop token excluded from the text leaves that chunk
    without text."""
    client = server.openai()
    text = client.chat.completions.create(model="fake-model", messages=HI, max_tokens=20).choices[0].message.content
    at = next(k for k in range(2, len(text)) if text[k] not in text[:k])  # where the answer stops
    if stop == "string":
        ask, reason = {"stop": [text[at:at + 2]]}, text[at:at + 2]
    else:
        reason = server.engine.tokenizer.encode(text[at], add_special_tokens=False)[0]
        ask = {"extra_body": {"stop_token_ids": [reason]}}
    whole = client.chat.completions.create(model="fake-model", messages=HI, max_tokens=20, **ask).choices[0]
    assert (whole.finish_reason, whole.model_extra["stop_reason"]) == ("stop", reason)
    assert whole.message.content == text[:at]
    chunks = list(client.chat.completions.create(model="fake-model", messages=HI, max_tokens=20, stream=True, **ask))
    assert streamed_choices(chunks)[0] == {"content": text[:at], "reasoning": "", "finish_reason": "stop",
                                           "stop_reason": reason}


def test_continuous_usage_stats_count_as_the_stream_goes(server):
    """stream_options.continuous_usage_stats (vLLM): every chunk carries the usage so far,
    the same usage as the final usage chunk at the end, prompt tokens details included."""
    chunks = list(server.openai().chat.completions.create(
        model="fake-model", messages=HI, max_tokens=4, stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True}))
    final = chunks[-1]
    assert final.choices == [] and final.usage.completion_tokens == 4
    assert final.usage.prompt_tokens_details.cached_tokens == 0
    counted = 0
    for chunk in chunks[:-1]:
        counted += len(chunk.choices[0].delta.content or "")  # one character per token here
        assert chunk.usage.completion_tokens == counted
        assert chunk.usage.prompt_tokens == final.usage.prompt_tokens
        assert chunk.usage.total_tokens == chunk.usage.prompt_tokens + chunk.usage.completion_tokens
        assert chunk.usage.prompt_tokens_details.cached_tokens == 0
    assert counted == 4


def test_a_step_whose_text_is_held_back_sends_no_chunk_without_logprobs(server):
    """The engine holds back text that may start a stop string; without logprobs such a
    step has nothing to send, so every chunk after the role's carries text or the finish
    reason (no empty deltas), and the text still adds up."""
    client = server.openai()
    ask = dict(model="fake-model", messages=HI, max_tokens=5, stop=["zzz"])
    whole = client.chat.completions.create(**ask).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **ask))
    assert chunks[0].choices[0].delta.role == "assistant"
    for chunk in chunks[1:]:
        (choice,) = chunk.choices
        assert choice.delta.content or choice.finish_reason is not None, chunk
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole and len(whole) == 5
    # the engine held back two steps' text ("zzz" minus one character): fewer chunks than tokens
    assert len(chunks) < 1 + 5
