"""Model outputs as the models write them, with the calls each format's parser must find.

``CORPUS[parser_name]`` lists ``(text, expected call names)``; ``PLAIN`` holds outputs
without any call. Every parser is also run over every other format's outputs, where
only the streaming property is checked.
"""

from __future__ import annotations

CORPUS: dict[str, list[tuple[str, list[str]]]] = {
    "hermes": [
        # Hermes 3: arguments before name, newlines inside the tags
        ('<tool_call>\n{"arguments": {"symbol": "TSLA"}, "name": "get_stock_fundamentals"}'
         "\n</tool_call>", ["get_stock_fundamentals"]),
        # Qwen 2.5: parallel calls
        ('<tool_call>\n{"name": "get_current_temperature", "arguments": {"location": '
         '"San Francisco, CA, USA"}}\n</tool_call>\n<tool_call>\n{"name": '
         '"get_temperature_date", "arguments": {"location": "San Francisco, CA, USA", '
         '"date": "2024-10-01"}}\n</tool_call>',
         ["get_current_temperature", "get_temperature_date"]),
        # Qwen 3: a sentence first, unicode arguments
        ("I'll look up the weather in both cities for you.\n\n<tool_call>\n"
         '{"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}\n'
         '</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "東京", '
         '"unit": "celsius"}}\n</tool_call>', ["get_weather", "get_weather"]),
        # nested arguments
        ('<tool_call>\n{"name": "search_documents", "arguments": {"query": "quarterly '
         'revenue \\"EMEA\\"", "filters": {"date_range": {"from": "2024-01-01", "to": '
         '"2024-03-31"}, "tags": ["finance", "q1"]}, "limit": 10}}\n</tool_call>',
         ["search_documents"]),
        ("The capital of France is Paris.", []),
        ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>', []),
    ],
    "mistral": [
        # Mistral 7B v0.3
        ('[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": '
         '"Paris, France", "format": "celsius"}}]', ["get_current_weather"]),
        ('[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": "Paris", '
         '"format": "celsius"}}, {"name": "get_current_weather", "arguments": {"location": '
         '"Lyon", "format": "celsius"}}]', ["get_current_weather", "get_current_weather"]),
        # v11+ tokenizers: name[ARGS]{...}, one marker per call
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]'
         '{"timezone": "Europe/Paris"}', ["get_weather", "get_time"]),
        ('Let me check that.[TOOL_CALLS]search[ARGS]{"query": "café near Gare du Nord", '
         '"filters": {"open_now": true, "price": [1, 2]}}', ["search"]),
        ("Bonjour ! Comment puis-je vous aider aujourd'hui ?", []),
    ],
    "llama3_json": [
        # Llama 3.1: the whole response is the call
        ('{"name": "get_current_conditions", "parameters": {"location": "San Francisco, CA", '
         '"unit": "Fahrenheit"}}', ["get_current_conditions"]),
        ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Berlin"}}; '
         '{"name": "get_time", "parameters": {"timezone": "Europe/Berlin"}}',
         ["get_weather", "get_time"]),
        ('Let me check.<|python_tag|>{"name": "search", "parameters": {"q": "日本語の本", '
         '"options": {"safe": true, "langs": ["ja", "en"]}}}', ["search"]),
        # a built-in tool, not a custom-tool call
        ('<|python_tag|>brave_search.call(query="current weather in Menlo Park")', []),
        ('{"answer": 42, "unit": "apples"}', []),
    ],
    "pythonic": [
        ('[get_weather(city="San Francisco", metric="celsius")]', ["get_weather"]),
        ("[get_weather(city='San Francisco', metric='celsius'), get_time(timezone='PST')]",
         ["get_weather", "get_time"]),
        ('[search(query="naïve café", filters={"tags": ["a", "b"], "limit": 5, '
         '"strict": True}, page=-1, cursor=None)]', ["search"]),
        ('[book_flight(origin="SFO", destination="JFK", passengers=[{"name": "Ana", '
         '"age": 31}], refundable=false)]\n\nI have booked it.', ["book_flight"]),
        ("[1] Smith et al. showed this in 2019.", []),
    ],
}

PLAIN: list[str] = [
    "",
    "  \n",
    "Sure! Here is a haiku:\n\nautumn moonlight—\na worm digs silently\ninto the chestnut.",
    "Use `if a < b { x = [1, 2]; }` in Rust; JSON looks like {\"a\": 1}.",
    "Ответ: 42. 答えは42です。🙂",
    "<think>\nThe user wants the weather. I should call get_weather.\n</think>\n\n"
    "It is sunny in Paris.",
]

#: every text above, for running each parser over all formats
ALL_TEXTS: list[str] = [text for cases in CORPUS.values() for text, _ in cases] + PLAIN
