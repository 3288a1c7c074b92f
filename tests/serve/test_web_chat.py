"""The web chat in a real browser: Playwright drives Debian's chromium against a live server on 127.0.0.1
with a tiny random model. Streaming, stop, the conversation kept across a reload, safe rendering of
hostile text, keyboard-only use, edit/regenerate/rename/export/delete, the API-key field, a narrow screen,
a conversation longer than the model's context (its oldest turns left out of the request, with a note).

    PYTHONPATH=. python -m pytest tests/serve/test_web_chat.py

Skipped when /usr/bin/chromium or the playwright package is missing (`make test` installs chromium)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import httpx
import pytest

from colossus.terminal_chat import oldest_turn

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

CONTEXT = 2048  # room for a long reply, which the tests stop by holding the engine (Engine.pause)
LONG_REPLY = {"max_tokens": 1800, "ignore_eos": True, "temperature": 0.8, "seed": 7}
SHORT_REPLY = {"max_tokens": 16, "ignore_eos": True, "temperature": 0.8, "seed": 7}
TWO_MESSAGES_SETTLED = "document.querySelectorAll('.msg').length === 2 && !document.querySelector('.streaming')"


# ---- a live server with a long-context tiny model --------------------------------------------------------

@pytest.fixture(scope="module")
def long_model_dir(tmp_path_factory, tok, tiny_model_writer) -> Path:
    """A tiny random model with a long context. It writes 1,800 tokens in about a second, so a test that needs a
    reply still streaming holds the engine between steps (see `held`) instead of racing it."""
    return tiny_model_writer(tmp_path_factory.mktemp("web-chat-model") / "tiny-long", tok, CONTEXT)


@pytest.fixture(scope="module")
def chat_url(live_server, long_model_dir) -> str:
    with live_server(model=long_model_dir) as url:
        yield url


@pytest.fixture
def held(chat_url, engine_at):
    """The web chat server's engine, held before its next step: a reply streams only as far as the test lets it
    (held.step()), so it is certainly still streaming when the test stops it. Let go after the test."""
    engine = engine_at(chat_url)
    engine.pause()

    class Held:
        def step(self, n: int = 1) -> None:
            engine.resume(n)
            engine.wait_held()

    yield Held()
    engine.resume()


# ---- helpers ------------------------------------------------------------------------------------------

def api(url: str, method: str, path: str, body: dict | None = None):
    r = httpx.request(method, f"{url}{path}", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def new_conversation(url: str, title: str, settings: dict, messages: list[dict] | None = None, **fields) -> str:
    """Created through the API just before the page loads, so it is the newest and the page opens it."""
    body = {"title": title, "settings": settings, **fields} | ({"messages": messages} if messages else {})
    return api(url, "POST", "/v1/conversations", body)["id"]


def open_chat(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#app[data-ready='true']")


def record_updates(page) -> None:
    """Keeps every distinct text the streaming reply shows, in order, in window.__updates."""
    page.evaluate("""() => {
        window.__updates = [];
        new MutationObserver(() => {
            const body = document.querySelector('.msg.assistant.streaming .msg-body');
            const text = body ? body.textContent : null;
            if (text && text !== window.__updates[window.__updates.length - 1]) window.__updates.push(text);
        }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
    }""")


def engine_metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert m, f"{name} is not in /metrics"
    return float(m.group(1))


def eventually(get, ok, timeout: float = 60.0):
    """get() again until ok(value) holds; the last value otherwise, for the assertion to show."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value) or time.monotonic() > deadline:
            assert ok(value), value
            return value
        time.sleep(0.05)


def messages_of(url: str, cid: str) -> list[dict]:
    return api(url, "GET", f"/v1/conversations/{cid}")["messages"]


# ---- tests --------------------------------------------------------------------------------------------

def stream_until(page, held, shown: str, most_steps: int = 60) -> None:
    """Let the held engine take one step at a time until the page shows `shown` (a JavaScript condition): each
    step's text is waited for before the next, so that the page sees them apart."""
    for _ in range(most_steps):
        if page.evaluate(f"() => {shown}"):
            return
        seen = page.evaluate("window.__updates.length")
        held.step()
        # a token whose text is held back (part of a UTF-8 character) changes nothing on the page
        with contextlib.suppress(sync_api.TimeoutError):
            page.wait_for_function("n => window.__updates.length > n", arg=seen, timeout=2000)
    raise AssertionError(f"the page never showed {shown} in {most_steps} steps")


def test_reply_streams_in_stop_keeps_it_and_a_reload_finds_the_conversation(page, chat_url, held):
    cid = new_conversation(chat_url, "Streaming", LONG_REPLY)
    aborted_before = engine_metric(chat_url, "colossus_requests_aborted_total")
    open_chat(page, chat_url)
    assert page.inner_text("#conversation-title") == "Streaming"
    record_updates(page)

    page.fill("#prompt", "Who is Sitor Vale?")
    page.click("#send")
    stream_until(page, held, "window.__updates.length >= 4")  # several distinct texts while it streams
    assert page.is_visible("#stop") and not page.is_visible("#send")
    updates = page.evaluate("window.__updates")
    assert len(set(updates)) == len(updates) >= 4

    page.click("#stop")
    page.wait_for_selector(".msg.assistant:not(.streaming) .msg-meta:has-text('stopped')")
    assert page.is_visible("#send") and not page.is_visible("#stop")
    shown = page.locator(".msg.assistant .msg-body").text_content()

    stored = messages_of(chat_url, cid)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[0]["content"] == "Who is Sitor Vale?"
    reply, meta = stored[1]["content"], stored[1]["meta"]
    assert meta["stopped"] is True and meta["completion_tokens"] < LONG_REPLY["max_tokens"]
    assert meta["tokens_per_second"] > 0
    assert reply and len(reply) >= len(updates[-1])  # all that was shown before the stop is kept
    # Closing the fetch made the server abort the engine request (still held: no step ran since the stop).
    deadline = time.monotonic() + 60
    while engine_metric(chat_url, "colossus_requests_aborted_total") <= aborted_before:
        assert time.monotonic() < deadline, "the server did not abort the stopped request"
        time.sleep(0.05)
    assert engine_metric(chat_url, "colossus_requests_running") == 0

    page.reload()
    page.wait_for_selector("#app[data-ready='true']")
    assert page.inner_text("#conversation-title") == "Streaming"
    assert page.inner_text(".msg.user .msg-body") == "Who is Sitor Vale?"
    rendered = page.evaluate("(t) => { const d = document.createElement('div'); "
                             "d.innerHTML = ColossusMarkdown.render(t); return d.textContent; }", reply)
    assert page.locator(".msg.assistant .msg-body").text_content() == rendered == shown
    assert re.search(r"tokens · [\d.]+ tok/s .*stopped", page.inner_text(".msg.assistant .msg-meta"))


def test_hostile_text_is_shown_as_text_and_no_script_runs(page, chat_url):
    hostile = ('<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
               '[click](javascript:window.__xss=3) <a href="https://x.test" onclick="window.__xss=4">a</a>')
    markdown = ("**bold** and *it* and `<b>code</b>`\n\n- one\n- two\n\n"
                "```html\n<script>window.__xss=5</script>\n```\n\n[docs](https://example.com/a_b)")
    cid = new_conversation(chat_url, "Hostile", SHORT_REPLY,
                           [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": hostile},
                            {"role": "assistant", "content": markdown}])
    open_chat(page, chat_url)
    page.fill("#prompt", hostile)
    page.press("#prompt", "Enter")
    page.wait_for_selector(".msg.assistant:not(.streaming) >> nth=2")

    msgs = page.locator("#messages")
    assert msgs.locator("img, script, iframe, object, embed, [onerror], [onclick]").count() == 0
    assert page.evaluate("window.__xss") is None
    # And the page's Content-Security-Policy would stop an inline script even if one got in.
    assert page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__csp = 1';
                                    document.body.append(s); return window.__csp; }""") is None
    assert page.locator(".msg.user .msg-body").nth(1).text_content() == hostile  # the user's own text, as typed
    first_reply = page.locator(".msg.assistant .msg-body").nth(0)
    assert "<script>window.__xss=2</script>" in first_reply.text_content()
    # The javascript: link stays text; the only link is the bare https URL, made by the renderer itself.
    assert first_reply.locator("a").evaluate_all("as => as.map(a => [a.getAttribute('href'), a.rel])") == [
        ["https://x.test", "noopener noreferrer"]]

    rendered = page.locator(".msg.assistant .msg-body").nth(1)
    assert rendered.locator("strong").text_content() == "bold" and rendered.locator("em").text_content() == "it"
    assert rendered.locator("p code").text_content() == "<b>code</b>"
    assert rendered.locator("ul li").all_text_contents() == ["one", "two"]
    assert rendered.locator("pre code").text_content() == "<script>window.__xss=5</script>"
    link = rendered.locator("a")
    assert link.get_attribute("href") == "https://example.com/a_b" and "noopener" in link.get_attribute("rel")
    copy = rendered.locator("button.copy-code")
    assert copy.get_attribute("aria-label") == "Copy code"
    assert [m["content"] for m in messages_of(chat_url, cid)][3] == hostile


def test_markdown_renderer_emits_only_its_own_tags(page, chat_url):
    """Many hostile inputs through ColossusMarkdown.render: only the allowed tags and attributes come out."""
    open_chat(page, chat_url)
    vectors = ["<img src=x onerror=alert(1)>", "<svg onload=alert(1)>", "[x](javascript:alert(1))",
               "[x](https://a.test\" onmouseover=\"alert(1))", "[x](data:text/html,<script>alert(1)</script>)",
               "https://a.test/<script>", "`</code><script>alert(1)</script>`", "```\n</pre><img src=x>\n```",
               "**<b onclick=alert(1)>x</b>**", "<!-- x --> &lt;script&gt; &amp;", "# <h1>t</h1>\n1. <li>x",
               "_<i>x</i>_ __<u>y</u>__ ***z***", "```js\" onload=\"x\n1\n```"]
    report = page.evaluate("""(vectors) => vectors.map((v) => {
        const d = document.createElement('div');
        d.innerHTML = ColossusMarkdown.render(v);
        const tags = new Set(), bad = [];
        for (const e of d.querySelectorAll('*')) {
            tags.add(e.tagName.toLowerCase());
            for (const a of e.attributes) {
                const ok = {a: ['href', 'target', 'rel'], ol: ['start'], button: ['type', 'class', 'aria-label'],
                            div: ['class'], span: ['class']}[e.tagName.toLowerCase()] || [];
                if (!ok.includes(a.name)) bad.push(e.tagName + ' ' + a.name);
                if (a.name === 'href' && !/^https?:\\/\\//.test(a.value)) bad.push('href ' + a.value);
            }
        }
        return {tags: [...tags], bad};
    })""", vectors)
    allowed = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "h3", "h4", "h5", "h6", "a", "div",
               "span", "button"}
    for v, r in zip(vectors, report, strict=True):
        assert set(r["tags"]) <= allowed and not r["bad"], (v, r)


def test_keyboard_alone_sends_stops_and_starts_a_new_chat(page, chat_url, held):
    cid = new_conversation(chat_url, "Keyboard", LONG_REPLY)
    open_chat(page, chat_url)
    record_updates(page)
    assert page.evaluate("document.activeElement.id") == "prompt"  # the message box has the focus at load
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")  # a new line, not a send
    page.keyboard.type("second line")
    assert page.input_value("#prompt") == "first line\nsecond line"
    page.keyboard.press("Enter")
    stream_until(page, held, "window.__updates.length >= 1")
    page.keyboard.press("Escape")  # stops the reply
    page.wait_for_selector(".msg.assistant:not(.streaming) .msg-meta:has-text('stopped')")
    stored = messages_of(chat_url, cid)
    assert stored[0]["content"] == "first line\nsecond line" and stored[1]["meta"]["stopped"] is True

    page.keyboard.press("Control+k")  # a new conversation
    assert page.inner_text("#conversation-title") == "New conversation"
    assert page.locator(".msg").count() == 0 and page.evaluate("document.activeElement.id") == "prompt"
    # Tab reaches the send button, a real <button> with a label, and focus is visible on it.
    page.keyboard.press("Tab")
    focused = page.evaluate("""() => { const e = document.activeElement;
        return {tag: e.tagName, label: e.getAttribute('aria-label'), outline: getComputedStyle(e).outlineStyle}; }""")
    assert focused == {"tag": "BUTTON", "label": "Send message", "outline": "solid"}
    page.click(".shortcuts summary")
    documented = page.inner_text(".shortcuts")
    for shortcut in ("Enter", "send", "Shift", "new line", "Esc", "stop the reply", "Ctrl", "new conversation"):
        assert shortcut in documented


def test_edit_regenerate_rename_export_and_delete(page, chat_url, tmp_path):
    cid = new_conversation(chat_url, "Manage", SHORT_REPLY,
                           [{"role": "user", "content": "old question"}, {"role": "assistant", "content": "old answer"},
                            {"role": "user", "content": "later"}, {"role": "assistant", "content": "later answer"}])
    open_chat(page, chat_url)
    assert page.locator(".conversation-list button[aria-current='true']").inner_text() == "Manage"

    # Edit the first message: what followed is dropped, the edit is sent and answered.
    page.locator(".msg.user").first.get_by_role("button", name="Edit message").click()
    page.fill(".msg-edit textarea", "new question")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => {TWO_MESSAGES_SETTLED} && "
                           "document.querySelector('.msg.assistant .msg-meta').textContent.includes('tok')")
    stored = messages_of(chat_url, cid)
    assert [(m["role"], m["content"]) for m in stored][0] == ("user", "new question")
    assert len(stored) == 2 and stored[1]["content"] not in ("old answer", "later answer")

    # Regenerate replaces the last reply with a new message.
    page.get_by_role("button", name="Regenerate reply").click()
    page.wait_for_function(f"() => {TWO_MESSAGES_SETTLED} && !document.getElementById('send').hidden")
    regenerated = messages_of(chat_url, cid)
    assert len(regenerated) == 2 and regenerated[1]["id"] != stored[1]["id"]

    page.click("#rename-chat")
    page.fill("#rename-input", "Renamed <b>chat</b>")
    page.keyboard.press("Enter")
    page.wait_for_selector(".conversation-list button:has-text('Renamed <b>chat</b>')")
    assert api(chat_url, "GET", f"/v1/conversations/{cid}")["title"] == "Renamed <b>chat</b>"

    with page.expect_download() as download:
        page.click("#export-chat")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["id"] == cid and len(exported["messages"]) == 2

    page.expect_confirm("delete")
    page.click("#delete-chat")
    page.wait_for_function(f"() => !document.querySelector(\".conversation-list button[data-id='{cid}']\")")
    assert httpx.get(f"{chat_url}/v1/conversations/{cid}").status_code == 404


def test_settings_are_kept_per_conversation(page, chat_url):
    cid = new_conversation(chat_url, "Settings", SHORT_REPLY)
    open_chat(page, chat_url)
    page.click("#toggle-settings")
    page.fill("#system-prompt", "Answer briefly.")
    page.fill("#max-tokens", "12")
    page.locator("#max-tokens").blur()
    conv = eventually(lambda: api(chat_url, "GET", f"/v1/conversations/{cid}"),
                      lambda c: c["settings"].get("max_tokens") == 12)
    assert conv["system"] == "Answer briefly."
    assert conv["settings"]["ignore_eos"] is True  # settings the page has no field for are kept
    page.fill("#prompt", "hi")
    page.press("#prompt", "Enter")
    page.wait_for_selector(".msg.assistant:not(.streaming) .msg-meta:has-text('tokens')")
    assert messages_of(chat_url, cid)[1]["meta"]["completion_tokens"] == 12


def test_api_key_field_appears_on_401_and_is_kept(browser, live_server, page_timeout_ms):
    with live_server(api_keys=["sekret-key"]) as url:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(page_timeout_ms)
        page.goto(url)
        page.wait_for_selector("#auth:not([hidden])")
        assert page.evaluate("document.activeElement.id") == "api-key"
        page.fill("#api-key", "sekret-key")
        page.keyboard.press("Enter")
        page.wait_for_selector("#app[data-ready='true']")
        assert page.is_hidden("#auth")
        assert page.evaluate("localStorage.getItem('colossus.apiKey')") == "sekret-key"
        page.reload()
        page.wait_for_selector("#app[data-ready='true']")  # the stored key is used: no 401 this time
        assert page.is_hidden("#auth")
        context.close()


def test_narrow_screen_has_no_sideways_scroll_and_a_conversation_drawer(browser, chat_url, page_timeout_ms):
    new_conversation(chat_url, "Narrow A", SHORT_REPLY, [{"role": "user", "content": "a" * 300}])
    new_conversation(chat_url, "Narrow B", SHORT_REPLY, [{"role": "user", "content": "b" * 300}])
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    page.set_default_timeout(page_timeout_ms)
    open_chat(page, chat_url)
    assert page.inner_text("#conversation-title") == "Narrow B"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.is_hidden("#sidebar .conversation-list")
    page.click("#toggle-sidebar")
    page.click("#sidebar .conversation-list button:has-text('Narrow A')")  # switch; the drawer closes
    page.wait_for_function("() => document.getElementById('conversation-title').textContent === 'Narrow A'")
    page.wait_for_selector("#sidebar .conversation-list", state="hidden")
    assert page.locator(".msg.user .msg-body").text_content() == "a" * 300
    page.keyboard.press("Alt+ArrowUp")  # the previous conversation in the list, by keyboard
    page.wait_for_function("() => document.getElementById('conversation-title').textContent === 'Narrow B'")
    page.click("#toggle-sidebar")
    page.wait_for_selector("#sidebar .conversation-list")
    page.keyboard.press("Escape")
    page.wait_for_selector("#sidebar .conversation-list", state="hidden")
    context.close()


# ---- conversations longer than the model's context ---------------------------------------------------------

def left_out(messages: list[dict], reserve: int, context: int, count) -> int:
    """How many of the oldest messages the terminal chat's rule leaves out (colossus.terminal_chat: whole turns,
    never the system prompt or the newest turn) so that count(prompt) + reserve fits the context."""
    msgs, dropped = list(messages), 0
    while count(msgs) + reserve > context and (turn := oldest_turn(msgs)) is not None:
        dropped += turn.stop - turn.start
        del msgs[turn]
    return dropped


FIT = """async (cases) => {
    const results = [];
    for (const c of cases) {
        let calls = 0;
        const count = async (messages) => {  // as the Python side counts: a token per character and per message
            calls += 1;
            return messages.reduce((n, m) => n + m.content.length + 1, 0);
        };
        const fit = await ColossusContext.fit(c.messages, {context: c.context, maxTokens: c.maxTokens, count});
        results.push({kept: fit.messages, dropped: fit.dropped, promptTokens: fit.promptTokens,
                      reserved: fit.reserved, calls});
    }
    return results;
}"""


def test_the_context_fit_leaves_out_the_oldest_whole_turns_as_the_terminal_chat_does(page, chat_url):
    """ColossusContext.fit (context.js) against the terminal chat's rule, on made-up counts: the same messages
    kept for every context and max_tokens, the system message and the newest turn always, about log2(turns)
    counts asked."""
    def m(role: str, n: int) -> dict:
        return {"role": role, "content": role[0] * n}

    turns = [[m("user", 9), m("assistant", 20)], [m("user", 3)], [m("user", 14), m("assistant", 5), m("assistant", 7)],
             *[[m("user", 4 + i), m("assistant", 11 + 3 * i)] for i in range(9)], [m("user", 12)]]
    chat = [x for t in turns for x in t]
    conversations = [[m("system", 6), *chat], chat, [m("assistant", 8), *chat], [m("system", 6), m("user", 30)]]
    cases = [{"messages": c, "context": context, "maxTokens": mt} for c in conversations
             for context in range(24, 420, 9) for mt in (None, 1, 16, 5000)]
    open_chat(page, chat_url)
    results = page.evaluate(FIT, cases)

    def count(msgs):
        return sum(len(x["content"]) + 1 for x in msgs)

    for case, r in zip(cases, results, strict=True):
        msgs, context = case["messages"], case["context"]
        reserve = min(case["maxTokens"] or 256, context // 2)
        assert r["reserved"] == max(1, reserve), case
        dropped = left_out(msgs, r["reserved"], context, count)
        first = 1 if msgs[0]["role"] == "system" else 0
        assert r["dropped"] == dropped, (context, case["maxTokens"], r)
        assert r["kept"] == msgs[:first] + msgs[first + dropped:]
        assert r["promptTokens"] == count(r["kept"])
        assert r["kept"][-1] == msgs[-1] and r["kept"][:first] == msgs[:first]
        starts = sum(1 for i, x in enumerate(msgs) if i == first or (i > first and x["role"] == "user"))
        assert r["calls"] <= 2 + starts.bit_length(), (r["calls"], starts)
    # the cases hold each outcome: all kept, some left out, and the newest turn alone still too long (sent as it
    # is: the server's 400 says so)
    outcomes = {(r["dropped"] == 0, r["promptTokens"] + r["reserved"] <= c["context"])
                for c, r in zip(cases, results, strict=True)}
    assert {(True, True), (False, True), (False, False)} <= outcomes


def tokens_of(url: str, messages: list[dict]) -> int:
    r = httpx.post(f"{url}/tokenize", json={"messages": messages}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["count"]


def hold_long_conversation(page, url: str, cid: str, system: dict, questions: list[str], reserve: int,
                           context: int) -> list[tuple[dict, dict]]:
    """Asks each question in the page and checks what was sent: the system message, then the conversation less
    its oldest messages, as many as the terminal chat's rule leaves out to keep `reserve` tokens for the reply
    (counted with the server's /tokenize), whole turns only, the question last. Returns each request body and the
    stored reply."""
    asked = []
    for i, question in enumerate(questions):
        with page.expect_request("**/v1/chat/completions") as request:
            page.fill("#prompt", question)
            page.press("#prompt", "Enter")
        page.wait_for_function(f"() => document.querySelectorAll('.msg.assistant').length === {i + 1} && "
                               "!document.querySelector('.streaming') && !document.getElementById('send').hidden")
        sent = json.loads(request.value.post_data)
        stored = messages_of(url, cid)
        assert [m["role"] for m in stored[-2:]] == ["user", "assistant"], stored[-1]  # the reply arrived
        history = [system] + [{"role": m["role"], "content": m["content"]} for m in stored[:-1]]
        dropped = left_out(history, reserve, context, lambda msgs: tokens_of(url, msgs))
        assert sent["messages"] == history[:1] + history[1 + dropped:]
        assert sent["messages"][-1] == {"role": "user", "content": question}
        assert tokens_of(url, sent["messages"]) + reserve <= context
        reply = stored[-1]
        assert reply["meta"].get("dropped_messages", 0) == dropped
        note = page.locator(".msg.assistant").nth(i).locator(".context-note")
        if dropped:
            sync_api.expect(note).to_have_text(f"The oldest {dropped} messages no longer fit in the model's "
                                               "context and were left out of this reply.")
        else:
            sync_api.expect(note).to_have_count(0)
        asked.append((sent, reply))
    return asked


QUESTIONS = [f"Who is Sitor Vale? ({i})" for i in range(6)]


def test_a_conversation_longer_than_the_context_leaves_out_its_oldest_turns_with_a_note(page, server_url, context):
    settings = SHORT_REPLY | {"search_parameters": {"mode": "off"}}
    system = {"role": "system", "content": "Answer in a few words."}
    cid = new_conversation(server_url, "Longer than the context", settings, system=system["content"])
    open_chat(page, server_url)
    asked = hold_long_conversation(page, server_url, cid, system, QUESTIONS, SHORT_REPLY["max_tokens"], context)
    for sent, reply in asked:  # every reply came in full: none failed, none was cut short by a full context
        assert sent["max_tokens"] == SHORT_REPLY["max_tokens"]
        assert reply["meta"]["completion_tokens"] == SHORT_REPLY["max_tokens"]
    dropped = [reply["meta"].get("dropped_messages", 0) for _, reply in asked]
    assert dropped[0] == 0 and dropped[-1] >= 2, dropped  # the conversation did outgrow the context
    page.reload()  # the notes are kept with the replies
    page.wait_for_selector("#app[data-ready='true']")
    sync_api.expect(page.locator(".msg.assistant .context-note")).to_have_count(sum(1 for d in dropped if d))


def test_without_max_tokens_a_long_conversation_keeps_half_the_context_for_the_reply(page, server_url, context):
    settings = {"ignore_eos": True, "temperature": 0.8, "seed": 7, "search_parameters": {"mode": "off"}}
    system = {"role": "system", "content": "Answer in a few words."}
    cid = new_conversation(server_url, "No max tokens", settings, system=system["content"])
    open_chat(page, server_url)
    asked = hold_long_conversation(page, server_url, cid, system, QUESTIONS[:3], context // 2, context)
    for sent, reply in asked:  # the reply runs on to the end of the context: at least the half kept for it
        assert "max_tokens" not in sent
        assert reply["meta"]["completion_tokens"] >= context // 2
    assert asked[-1][1]["meta"].get("dropped_messages", 0) >= 2
