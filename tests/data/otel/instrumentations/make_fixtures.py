"""Writes the OTLP/JSON fixtures of this folder: spans shaped as each instrumentation writes them.

Shapes follow the instrumentations' docs and semantic conventions (OTel GenAI contrib, OpenLLMetry,
OpenInference for CrewAI / LlamaIndex / OpenAI Agents SDK / Google ADK / AutoGen, PydanticAI with
Logfire, Vercel AI SDK). Every content attribute and span event carries MARKER. Agent, workflow
and aggregate spans carry usage totals on purpose (they must never be counted). Spans of one
trace are split over several export lines, children before parents, as a batching exporter may
write them. Run `python make_fixtures.py` here to rewrite the files; the tests count their
expected values from the files themselves.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

HERE = Path(__file__).parent
MARKER = "SECRET-PROMPT-MARKER-7f3a"
T0 = 1763719200_000000000  # 2025-11-21T10:00:00Z


class Trace:
    def __init__(self, n: int, fixture: int) -> None:
        self.trace_id = f"{fixture:02x}{n:02x}" + "c0ffee" * 4 + "abcd"
        self.n = 0
        self.spans: list[dict] = []

    def span(self, name: str, parent: dict | str | None, attrs: dict, *, events: bool = False, error: bool = False):
        self.n += 1
        span_id = self.trace_id[:4] + f"{self.n:012x}"
        start = T0 + (self.n * 1_000_000_000)
        parent_id = parent["spanId"] if isinstance(parent, dict) else (parent or "")
        span = {
            "traceId": self.trace_id,
            "spanId": span_id,
            "parentSpanId": parent_id,
            "name": name,
            "kind": 3 if events else 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 700_000_000),
            "attributes": [attr(k, v) for k, v in attrs.items()],
            "events": [],
            "status": {"code": 2, "message": "upstream timeout"} if error else {},
        }
        if events:  # older instrumentations put prompt and completion in span events
            span["events"] = [
                {"timeUnixNano": str(start + 1), "name": "gen_ai.content.prompt",
                 "attributes": [attr("gen_ai.prompt", f"{MARKER} what is our refund policy?")]},
                {"timeUnixNano": str(start + 2), "name": "gen_ai.content.completion",
                 "attributes": [attr("gen_ai.completion", f"{MARKER} refunds within 30 days")]},
            ]  # fmt: skip
        self.spans.append(span)
        return span


def attr(key: str, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def export(traces: list[Trace], scope: str, service: str) -> list[dict]:
    """Export lines: each trace's spans in reverse order (children first), two lines per trace."""
    lines = []
    for trace in traces:
        spans = list(reversed(trace.spans))
        half = (len(spans) + 1) // 2
        for part in (spans[:half], spans[half:]):
            if part:
                lines.append({"resourceSpans": [{
                    "resource": {"attributes": [attr("service.name", service)]},
                    "scopeSpans": [{"scope": {"name": scope, "version": "1.0.0"}, "spans": part}],
                }]})  # fmt: skip
    return lines


def write(name: str, lines: list[dict]) -> None:
    (HERE / name).write_text("".join(json.dumps(line) + "\n" for line in lines))


# -- OpenAI via the OTel GenAI contrib instrumentation (new names) -------------------------------------------


def genai_openai() -> list[dict]:
    traces = [Trace(i, 1) for i in range(3)]
    a = traces[0]
    agent = a.span("invoke_agent planner", None, {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "asst_planner", "gen_ai.agent.name": "Planner",
        "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 50000, "gen_ai.usage.output_tokens": 5000,  # totals: never counted
        "gen_ai.system_instructions": f"{MARKER} you plan"})  # fmt: skip
    a.span("chat gpt-4o", agent, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.cache_read.input_tokens": 200, "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.reasoning.output_tokens": 0, "openai.response.service_tier": "default",
        "gen_ai.input.messages": f'[{{"role": "user", "content": "{MARKER}"}}]',
        "gen_ai.output.messages": f'[{{"role": "assistant", "content": "{MARKER}"}}]'})  # fmt: skip
    tool = a.span("execute_tool search", agent, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                                                  "gen_ai.tool.call.arguments": MARKER})  # fmt: skip
    a.span("chat o3-mini", tool, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "o3-mini",
        "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 700.0,  # a double: accepted when whole
        "gen_ai.usage.reasoning.output_tokens": 512}, events=True)  # fmt: skip
    sub = a.span("create_agent summarizer", agent, {"gen_ai.operation.name": "create_agent",
                                                     "gen_ai.agent.name": "Summarizer"})  # fmt: skip
    a.span("chat claude-sonnet-4", sub, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-20250514",
        # Anthropic's own uncached input (smaller than its cache parts): taken as already uncached.
        "gen_ai.usage.input_tokens": 40, "gen_ai.usage.cache_read.input_tokens": 3000,
        "gen_ai.usage.cache_creation.input_tokens": 500, "gen_ai.usage.output_tokens": 250})  # fmt: skip
    b = traces[1]
    b.span("embeddings text-embedding-3-small", None, {
        "gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 640})  # fmt: skip
    # Its parent was never exported (the chain breaks): the call still lands, in its trace.
    b.span("chat gpt-4o-mini", "feedfacefeedface", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 310, "gen_ai.usage.output_tokens": 42}, error=True)  # fmt: skip
    c = traces[2]  # ids in base64, as some exporters write them; intValue as a JSON number
    root = c.span("invoke_agent triage", None, {"gen_ai.operation.name": "invoke_agent",
                                                "gen_ai.agent.name": "Triage"})  # fmt: skip
    call = c.span("chat gpt-4o-mini", root, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 2000, "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.usage.output_tokens": 90})  # fmt: skip
    call["attributes"][3]["value"] = {"intValue": 2000}
    for span in c.spans:
        for field in ("traceId", "spanId", "parentSpanId"):
            if span[field]:
                span[field] = base64.b64encode(bytes.fromhex(span[field])).decode()
    return export(traces, "opentelemetry.instrumentation.openai_v2", "billing-assistant")


# -- OpenLLMetry / Traceloop (gen_ai.usage.prompt_tokens, llm.request.type) ---------------------------------


def openllmetry() -> list[dict]:
    traces = [Trace(i, 2) for i in range(3)]
    for i, t in enumerate(traces):
        wf = t.span("research.workflow", None, {"traceloop.span.kind": "workflow",
                                                "traceloop.entity.name": "research", "traceloop.workflow.name": "research",
                                                "traceloop.entity.input": MARKER})  # fmt: skip
        agent = t.span("researcher.agent", wf, {"traceloop.span.kind": "agent", "traceloop.entity.name": "researcher",
                                                "traceloop.entity.output": MARKER})  # fmt: skip
        task = t.span("summarize.task", agent, {"traceloop.span.kind": "task", "traceloop.entity.name": "summarize",
                                                "gen_ai.request.model": "gpt-4o-mini",
                                                "gen_ai.usage.prompt_tokens": 99999,  # a total: never counted
                                                "gen_ai.usage.completion_tokens": 9999})  # fmt: skip
        t.span("openai.chat", task, {
            "llm.request.type": "chat", "gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.prompt_tokens": 1500 + i,
            "gen_ai.usage.cache_read_input_tokens": 1024, "gen_ai.usage.completion_tokens": 120,
            "llm.usage.total_tokens": 1620 + i, "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": MARKER,
            "gen_ai.completion.0.content": MARKER})  # fmt: skip
        tool = t.span("web_search.tool", agent, {"traceloop.span.kind": "tool", "traceloop.entity.name": "web_search"})
        # Anthropic: prompt_tokens = input + cache read + cache creation.
        t.span("anthropic.chat", tool, {
            "llm.request.type": "chat", "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-sonnet-4-20250514", "gen_ai.usage.prompt_tokens": 100 + 2000 + 300,
            "gen_ai.usage.cache_read_input_tokens": 2000, "gen_ai.usage.cache_creation_input_tokens": 300,
            "gen_ai.usage.completion_tokens": 400, "gen_ai.prompt.0.content": MARKER})  # fmt: skip
        if i == 1:
            t.span("openai.embeddings", wf, {
                "llm.request.type": "embedding", "gen_ai.system": "OpenAI",
                "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.prompt_tokens": 256,
                "gen_ai.prompt.0.content": MARKER})  # fmt: skip
    return export(traces, "opentelemetry.instrumentation.openai.v1", "research-service")


# -- OpenInference (Arize) ------------------------------------------------------------------------------------


def oi_llm(t: Trace, name: str, parent, model: str, provider: str, prompt: int, completion: int, **details) -> dict:
    attrs = {"openinference.span.kind": "LLM", "llm.model_name": model, "llm.provider": provider,
             "llm.system": provider, "llm.token_count.prompt": prompt, "llm.token_count.completion": completion,
             "llm.token_count.total": prompt + completion, "input.value": f'{{"messages": "{MARKER}"}}',
             "input.mime_type": "application/json", "output.value": MARKER,
             "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": MARKER,
             "llm.output_messages.0.message.content": MARKER, "llm.invocation_parameters": '{"temperature": 0}'}  # fmt: skip
    keys = {"cache_read": "llm.token_count.prompt_details.cache_read",
            "cache_write": "llm.token_count.prompt_details.cache_write",
            "reasoning": "llm.token_count.completion_details.reasoning"}  # fmt: skip
    attrs.update({keys[k]: v for k, v in details.items()})
    return t.span(name, parent, attrs)


def oi(kind: str, **attrs) -> dict:
    return {"openinference.span.kind": kind, "input.value": MARKER, "output.value": MARKER, **attrs}


def crewai() -> list[dict]:
    traces = [Trace(i, 3) for i in range(2)]
    for i, t in enumerate(traces):
        crew = t.span("Crew.kickoff", None, oi("CHAIN", **{"llm.token_count.prompt": 88888,  # crew totals
                                                          "llm.token_count.completion": 7777, "llm.model_name": "gpt-4o"}))  # fmt: skip
        for role in ("Senior Researcher", "Reporting Analyst"):
            agent = t.span(f"{role}._execute_core", crew, oi("AGENT", **{"agent.name": role}))
            oi_llm(t, "completion", agent, "gpt-4o", "openai", 2100 + i, 350, cache_read=1024)
            tool = t.span("Search the internet", agent, oi("TOOL", **{"tool.name": "serper"}))
            oi_llm(t, "completion", tool, "gpt-4o-mini", "openai", 800, 60)
    return export(traces, "openinference.instrumentation.crewai", "crew")


def llamaindex() -> list[dict]:
    traces = [Trace(i, 4) for i in range(3)]
    for i, t in enumerate(traces):
        wf = t.span("AgentWorkflow.run", None, oi("CHAIN", **{"llm.token_count.total": 55555}))
        agent = t.span("FunctionAgent.take_step", wf, oi("AGENT"))  # no agent.name: its span name names it
        t.span("OpenAIEmbedding.get_query_embedding", agent, {
            "openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
            "llm.token_count.prompt": 12, "embedding.embeddings.0.embedding.text": MARKER})  # fmt: skip
        t.span(
            "VectorIndexRetriever.retrieve",
            agent,
            oi("RETRIEVER", **{"retrieval.documents.0.document.content": MARKER}),
        )
        oi_llm(t, "OpenAI.achat", agent, "gpt-4o-mini", "openai", 3000, 250 + i, cache_read=2048)
        if i == 2:
            oi_llm(t, "OpenAI.achat", wf, "o3-mini", "openai", 1000, 900, reasoning=640)
    return export(traces, "openinference.instrumentation.llama_index", "rag")


def openai_agents() -> list[dict]:
    traces = [Trace(i, 5) for i in range(3)]
    for i, t in enumerate(traces):
        wf = t.span("Agent workflow", None, oi("CHAIN"))
        triage = t.span("Triage Agent", wf, oi("AGENT", **{"graph.node.id": "Triage Agent"}))
        oi_llm(t, "response", triage, "gpt-4o-2024-08-06", "openai", 1500, 200, cache_read=1024, reasoning=0)
        t.span("transfer_to_billing_agent", triage, oi("TOOL", **{"tool.name": "transfer_to_billing_agent"}))
        billing = t.span("Billing Agent", wf, oi("AGENT", **{"graph.node.id": "Billing Agent"}))
        oi_llm(t, "response", billing, "o3-mini", "openai", 2500 + i, 800, cache_read=0, reasoning=512)
        tool = t.span("get_invoice", billing, oi("TOOL", **{"tool.name": "get_invoice"}))
        oi_llm(t, "response", tool, "o3-mini", "openai", 600, 100, reasoning=64)  # a call a tool made
    return export(traces, "openinference.instrumentation.openai_agents", "support")


def google_adk() -> list[dict]:
    traces = [Trace(i, 6) for i in range(3)]
    for t in traces[:2]:  # OpenInference's ADK instrumentation
        inv = t.span("invocation", None, oi("CHAIN"))
        agent = t.span("agent_run [weather_agent]", inv, oi("AGENT", **{"agent.name": "weather_agent"}))
        oi_llm(t, "call_llm", agent, "gemini-2.0-flash", "google", 1800, 90, cache_read=1000)
        t.span("execute_tool get_weather", agent, oi("TOOL", **{"tool.name": "get_weather"}))
        oi_llm(t, "call_llm", agent, "gemini-2.0-flash", "google", 1950, 120)
    t = traces[2]  # ADK's own OTel spans: call_llm has no gen_ai.operation.name
    agent = t.span("invoke_agent weather_agent", None, {"gen_ai.operation.name": "invoke_agent",
                                                        "gen_ai.agent.name": "weather_agent",
                                                        "gen_ai.system": "gcp.vertex.agent"})  # fmt: skip
    for n in range(2):
        t.span("call_llm", agent, {
            "gen_ai.system": "gcp.vertex.agent", "gen_ai.request.model": "gemini-2.0-flash",
            "gen_ai.usage.input_tokens": 700 + n, "gen_ai.usage.output_tokens": 55,
            "gcp.vertex.agent.llm_request": f'{{"contents": "{MARKER}"}}',
            "gcp.vertex.agent.llm_response": f'{{"text": "{MARKER}"}}'})  # fmt: skip
        t.span("execute_tool get_weather", agent, {"gen_ai.operation.name": "execute_tool",
                                                   "gen_ai.tool.name": "get_weather",
                                                   "gcp.vertex.agent.tool_call_args": MARKER})  # fmt: skip
    return export(traces, "gcp.vertex.agent", "weather")


def autogen() -> list[dict]:
    traces = [Trace(i, 7) for i in range(2)]
    for t in traces:
        team = t.span("RoundRobinGroupChat.run", None, oi("CHAIN"))
        for agent_name in ("writer", "critic"):
            agent = t.span(f"{agent_name}.on_messages", team, oi("AGENT", **{"agent.name": agent_name}))
            oi_llm(t, "OpenAIChatCompletionClient.create", agent, "gpt-4o", "openai", 1100, 180)
    return export(traces, "openinference.instrumentation.autogen_agentchat", "writers-room")


# -- PydanticAI with Logfire ------------------------------------------------------------------------------


def pydantic_ai() -> list[dict]:
    traces = [Trace(i, 8) for i in range(3)]

    def agent_run(t: Trace, parent, name: str, input_tokens: int, output_tokens: int) -> dict:
        return t.span("agent run", parent, {
            "agent_name": name, "gen_ai.agent.name": name, "model_name": "gpt-4o", "logfire.msg": f"{name} run",
            "gen_ai.usage.input_tokens": input_tokens, "gen_ai.usage.output_tokens": output_tokens,  # run totals
            "final_result": MARKER, "all_messages_events": f'[{{"content": "{MARKER}"}}]',
            "logfire.span_type": "span"})  # fmt: skip

    def chat(t: Trace, parent, model: str, inp: int, out: int) -> dict:
        return t.span(f"chat {model}", parent, {
            "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": model,
            "gen_ai.response.model": model, "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
            "model_request_parameters": "{}", "events": f'[{{"content": "{MARKER}"}}]',
            "logfire.msg": f"chat {model}"})  # fmt: skip

    a = traces[0]
    run = agent_run(a, None, "support_agent", 2300, 260)
    chat(a, run, "gpt-4o", 1000, 60)
    tools = a.span("running tools", run, {"tools": '["lookup"]', "logfire.msg": "running 1 tool"})
    a.span("running tool", tools, {"gen_ai.tool.name": "lookup", "tool_arguments": MARKER})
    chat(a, run, "gpt-4o", 1300, 200)
    b = traces[1]  # delegation: a tool runs another agent
    run = agent_run(b, None, "router", 3000, 300)
    chat(b, run, "gpt-4o-mini", 900, 40)
    tool = b.span("running tool", run, {"gen_ai.tool.name": "ask_math_agent", "tool_arguments": MARKER})
    inner = agent_run(b, tool, "math_agent", 2100, 260)
    chat(b, inner, "gpt-4o-mini", 2100, 260)
    c = traces[2]  # logfire.instrument_openai() too: the client's span inside PydanticAI's chat span
    run = agent_run(c, None, "support_agent", 1400, 110)
    outer = chat(c, run, "gpt-4o", 1400, 110)
    c.span("Chat Completion with 'gpt-4o'", outer, {
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1400, "gen_ai.usage.output_tokens": 110, "request_data": MARKER,
        "response_data": MARKER, "async": False})  # fmt: skip
    return export(traces, "pydantic-ai", "support")


# -- Vercel AI SDK ----------------------------------------------------------------------------------------


def vercel_ai() -> list[dict]:
    traces = [Trace(i, 9) for i in range(3)]
    a = traces[0]  # AI SDK 4: generateText with a tool step, promptTokens / completionTokens
    outer = a.span("ai.generateText", None, {
        "operation.name": "ai.generateText", "ai.operationId": "ai.generateText", "ai.model.id": "gpt-4o",
        "ai.model.provider": "openai.chat", "ai.prompt": f'{{"prompt": "{MARKER}"}}',
        "ai.usage.promptTokens": 1200 + 1500, "ai.usage.completionTokens": 80 + 300,  # the steps' totals
        "ai.response.text": MARKER, "ai.telemetry.functionId": "answer-question"})  # fmt: skip
    for inp, out in ((1200, 80), (1500, 300)):
        a.span("ai.generateText.doGenerate", outer, {
            "operation.name": "ai.generateText.doGenerate", "ai.model.id": "gpt-4o",
            "ai.model.provider": "openai.chat", "ai.prompt.messages": f'[{{"content": "{MARKER}"}}]',
            "ai.usage.promptTokens": inp, "ai.usage.completionTokens": out, "ai.response.text": MARKER,
            "gen_ai.system": "openai.chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": out})  # fmt: skip
        if out == 80:
            a.span("ai.toolCall", outer, {"ai.toolCall.name": "weather", "ai.toolCall.args": MARKER})
    b = traces[1]  # AI SDK 5: streamText, inputTokens / outputTokens / cachedInputTokens / reasoningTokens
    outer = b.span("ai.streamText", None, {
        "operation.name": "ai.streamText", "ai.model.id": "o3-mini", "ai.model.provider": "openai.responses",
        "ai.usage.inputTokens": 4000, "ai.usage.outputTokens": 900, "ai.usage.cachedInputTokens": 2048,
        "ai.usage.reasoningTokens": 600, "ai.prompt": MARKER})  # fmt: skip
    b.span("ai.streamText.doStream", outer, {
        "operation.name": "ai.streamText.doStream", "ai.model.id": "o3-mini", "ai.model.provider": "openai.responses",
        "ai.usage.inputTokens": 4000, "ai.usage.outputTokens": 900, "ai.usage.cachedInputTokens": 2048,
        "ai.usage.reasoningTokens": 600, "ai.response.model": "o3-mini-2025-01-31",
        "ai.prompt.messages": MARKER, "ai.response.text": MARKER})  # fmt: skip
    c = traces[2]  # embedMany
    outer = c.span("ai.embedMany", None, {"operation.name": "ai.embedMany", "ai.model.id": "text-embedding-3-small",
                                          "ai.model.provider": "openai.embedding", "ai.values": MARKER,
                                          "ai.usage.tokens": 300})  # fmt: skip
    for _ in range(2):
        c.span("ai.embedMany.doEmbed", outer, {
            "operation.name": "ai.embedMany.doEmbed", "ai.model.id": "text-embedding-3-small",
            "ai.model.provider": "openai.embedding", "ai.values": MARKER, "ai.usage.tokens": 150})  # fmt: skip
    return export(traces, "ai", "next-app")


FIXTURES = {
    "genai_openai.jsonl": genai_openai,
    "openllmetry.jsonl": openllmetry,
    "openinference_crewai.jsonl": crewai,
    "openinference_llamaindex.jsonl": llamaindex,
    "openinference_openai_agents.jsonl": openai_agents,
    "openinference_google_adk.jsonl": google_adk,
    "openinference_autogen.jsonl": autogen,
    "pydantic_ai_logfire.jsonl": pydantic_ai,
    "vercel_ai_sdk.jsonl": vercel_ai,
}

if __name__ == "__main__":
    for name, make in FIXTURES.items():
        write(name, make())
