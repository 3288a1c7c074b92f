"""The web chat's searches and citations in a real browser: Playwright drives Debian's chromium against a live
server whose model was trained in the test session to search the feed, calculate and cite (tests/tool_model.py),
with its post ingested over HTTP first. A reply that searched shows the search, folded, as soon as it ran and
before the text; its [n] marker links to the cited post, listed under the answer, whose link opens the post's
page in the same page; a reload shows all of it again from the conversation store; a plain reply shows none of
it; the search mode set in the settings is sent as search_parameters.mode; steps kept in a message's meta
(a calculation, a fact-check, errors, hostile text) are shown as text.

    PYTHONPATH=. python -m pytest tests/serve/test_web_chat_search.py

Skipped when /usr/bin/chromium or the playwright package is missing (`make test` installs chromium)."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import tool_model as tm

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

GREEDY = {"temperature": 0}  # the tool model's replies are learnt token for token, under greedy decoding
PERMALINK = f"/posts/{tm.POST.id}"
SETTLED = ".msg.assistant:not(.streaming) .msg-meta:has-text('tokens')"


@pytest.fixture(scope="module")
def url(live_server, tool_model_dir):
    with live_server(model=tool_model_dir) as u:
        r = httpx.post(f"{u}/v1/posts", json=tm.POST.to_dict(), timeout=30)
        assert r.status_code == 200, r.text
        yield u


@pytest.fixture
def page_timeout_ms() -> int:
    """A bound for a broken page or a busy CPU running the model, not a speed."""
    return 300_000


def api(url: str, method: str, path: str, body: dict | None = None):
    r = httpx.request(method, f"{url}{path}", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def new_conversation(url: str, title: str, settings: dict, messages: list[dict] | None = None) -> str:
    """Created through the API just before the page loads, so it is the newest and the page opens it."""
    body = {"title": title, "settings": settings} | ({"messages": messages} if messages else {})
    return api(url, "POST", "/v1/conversations", body)["id"]


def open_chat(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#app[data-ready='true']")
    page.evaluate("window.__sameLoad = true")  # still there later: no reload happened


def record_first_step(page) -> None:
    """window.__firstStep: the streaming reply as it was when its first tool step appeared (its text, and
    whether it was still streaming)."""
    page.evaluate("""() => {
        window.__firstStep = null;
        new MutationObserver(() => {
            const msg = document.querySelector('.msg.assistant.streaming');
            if (window.__firstStep || !msg || !msg.querySelector('.tool-step')) return;
            window.__firstStep = {text: msg.querySelector('.msg-body').textContent, streaming: true};
        }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
    }""")


def ask(page, question: str) -> dict:
    """Send a question; the request body the page sent, once the reply is saved and shown."""
    with page.expect_request("**/v1/chat/completions") as request:
        page.fill("#prompt", question)
        page.press("#prompt", "Enter")
    page.wait_for_selector(SETTLED)
    return json.loads(request.value.post_data)


def choose_search_mode(page, mode: str) -> None:
    """Pick a search mode in the settings; returns once the page has saved it (its PATCH answered)."""
    with page.expect_response(lambda r: r.request.method == "PATCH" and "/v1/conversations/" in r.url) as saved:
        page.select_option("#search-mode", mode)
    assert saved.value.ok


def hrefs(locator) -> list[str]:
    return locator.evaluate_all("as => as.map(a => a.getAttribute('href'))")


def check_searched_and_cited(page) -> None:
    """The reply to RECENT_Q as the page shows it: one folded search step listing the post, the answer with its
    [1] linked to the post's page, and the post under the answer."""
    reply = page.locator(".msg.assistant").last
    step = reply.locator(".tool-step")
    expect(step).to_have_count(1)
    expect(step.locator("summary")).to_have_text("Searched the feed for “Pella Vorn” · 1 post")
    assert step.evaluate("d => d.open") is False  # folded
    card = step.locator(".post-card")
    expect(card).to_be_hidden()
    step.locator("summary").click()
    expect(card).to_be_visible()
    expect(card).to_have_attribute("data-id", tm.POST.id)
    expect(card.locator(".post-author")).to_have_text(f"@{tm.POST.author}")
    expect(card.locator(".post-text")).to_have_text(tm.POST.text)
    expect(card.locator("time")).to_have_attribute("datetime", "2026-11-30T09:00:00Z")
    assert hrefs(card.locator("a.post-link")) == [PERMALINK]
    step.locator("summary").click()
    expect(card).to_be_hidden()

    body = reply.locator(".msg-body")
    expect(body).to_have_text(tm.RECENT_A)
    cite = body.locator("a.cite")
    expect(cite).to_have_count(1)
    expect(cite).to_have_text("[1]")
    assert cite.get_attribute("href") == PERMALINK and cite.get_attribute("target") is None  # in the app
    assert cite.get_attribute("title").startswith("@ostra_news: Pella Vorn joined Ostra Labs")
    cited = reply.locator(".msg-sources li.cited")
    expect(cited).to_have_count(1)
    expect(cited.locator(".cited-link")).to_have_text(
        "[1] @ostra_news: Pella Vorn joined Ostra Labs today as its chief chemist.")
    assert hrefs(cited.locator("a.cited-link")) == [PERMALINK]
    steps_above, text_at, sources_below = reply.evaluate("""m => [...m.children].map(c => c.className)""")[1:4]
    assert (steps_above, text_at, sources_below) == ("tool-steps", "msg-body", "msg-sources")


def test_a_reply_that_searched_shows_its_search_and_cites_the_post_also_after_a_reload(page, url):
    cid = new_conversation(url, "Search", GREEDY)
    open_chat(page, url)
    record_first_step(page)
    sent = ask(page, tm.RECENT_Q)
    assert "search_parameters" not in sent  # none chosen: the server's default, auto
    # The step was on the page while the reply still streamed, before any of its text.
    assert page.evaluate("window.__firstStep") == {"text": "", "streaming": True}
    check_searched_and_cited(page)

    reply = api(url, "GET", f"/v1/conversations/{cid}")["messages"][1]
    assert reply["content"] == tm.RECENT_A
    meta = reply["meta"]
    (step,) = meta["tool_steps"]
    assert step["type"] == "search" and step["arguments"] == tm.RECENT_CALL and not step["forced"]
    assert [p["id"] for p in step["results"]] == [tm.POST.id]
    assert meta["citations"] == [f"{url}{PERMALINK}"]
    (a,) = meta["annotations"]
    assert tm.RECENT_A[a["url_citation"]["start_index"]:a["url_citation"]["end_index"]] == "[1]"

    page.reload()  # the conversation store has it all
    page.wait_for_selector("#app[data-ready='true']")
    page.evaluate("window.__sameLoad = true")
    check_searched_and_cited(page)

    page.locator(".msg-sources a.cited-link").click()  # the cited post's page, in the same page
    page.wait_for_url(f"{url}{PERMALINK}")
    current = page.locator("#post-thread .post.current .post-card")
    expect(current).to_have_attribute("data-id", tm.POST.id)
    expect(current.locator(".post-text")).to_have_text(tm.POST.text)
    assert page.is_hidden("#chat-view") and page.evaluate("window.__sameLoad") is True
    page.go_back()
    expect(page.locator("#chat-view")).to_be_visible()
    page.locator(".msg-body a.cite").click()  # the [1] marker goes there too
    page.wait_for_url(f"{url}{PERMALINK}")
    expect(page.locator("#post-thread .post.current .post-card")).to_have_attribute("data-id", tm.POST.id)
    assert page.evaluate("window.__sameLoad") is True


def test_a_plain_reply_shows_no_search_and_no_citations(page, url):
    cid = new_conversation(url, "Plain", GREEDY)
    open_chat(page, url)
    ask(page, tm.PLAIN_Q)
    reply = page.locator(".msg.assistant")
    expect(reply.locator(".msg-body")).to_have_text(tm.PLAIN_A)
    expect(reply.locator(".tool-step")).to_have_count(0)
    expect(reply.locator(".tool-steps")).to_be_hidden()
    expect(reply.locator(".msg-sources")).to_have_count(0)
    expect(reply.locator("a")).to_have_count(0)
    meta = api(url, "GET", f"/v1/conversations/{cid}")["messages"][1]["meta"]
    assert not {"tool_steps", "annotations", "citations"} & set(meta)


def test_the_search_mode_setting_is_kept_and_sent_as_search_parameters(page, url):
    cid = new_conversation(url, "Mode on", GREEDY)
    open_chat(page, url)
    page.click("#toggle-settings")
    expect(page.locator("#search-mode")).to_have_value("auto")
    choose_search_mode(page, "on")
    settings = api(url, "GET", f"/v1/conversations/{cid}")["settings"]
    assert settings["search_parameters"] == {"mode": "on"} and settings["temperature"] == 0

    assert ask(page, tm.RECENT_Q)["search_parameters"] == {"mode": "on"}
    step = page.locator(".msg.assistant .tool-step")
    expect(step).to_have_count(1)  # the server searched the question itself before the model wrote
    expect(step.locator("summary")).to_have_text(f"Searched the feed for “{tm.RECENT_Q}” · 1 post · search mode on")
    expect(page.locator(".msg.assistant .msg-body")).to_have_text(tm.RECENT_A)

    cid = new_conversation(url, "Mode off", GREEDY)  # the model learnt one question per conversation
    open_chat(page, url)
    page.click("#toggle-settings")
    expect(page.locator("#search-mode")).to_have_value("auto")  # the mode is the conversation's own
    choose_search_mode(page, "off")
    page.reload()  # and is kept on the server
    page.wait_for_selector("#app[data-ready='true']")
    expect(page.locator("#search-mode")).to_have_value("off")
    assert api(url, "GET", f"/v1/conversations/{cid}")["settings"]["search_parameters"] == {"mode": "off"}
    assert ask(page, tm.CALC_Q)["search_parameters"] == {"mode": "off"}
    calc = page.locator(".msg.assistant")
    expect(calc.locator(".tool-step[data-type='calculator'] summary")).to_contain_text("Calculated 12 * 7")
    expect(calc.locator(".msg-body")).to_have_text(tm.CALC_A)
    expect(calc.locator(".msg-sources")).to_have_count(0)


def test_steps_kept_in_a_message_are_shown_as_text_with_safe_links_only(page, url):
    hostile = '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script>'
    post = {"number": 1, "id": "h1", "url": f"{url}/posts/h1", "author": "troll", "created_at": "2026-11-30T09:00:00Z",
            "text": hostile}
    steps = [
        {"type": "search", "arguments": {"query": hostile, "authors": ["troll"]}, "error": None, "forced": False,
         "results": [post]},
        {"type": "calculator", "arguments": {"expression": "12 * 7"}, "error": None, "forced": False, "results": [],
         "output": "84"},
        {"type": "fact_check", "arguments": {"post_id": "h1"}, "error": None, "forced": False, "results": [post],
         "output": "REFUTES: it is not so.\n[1] @troll 2026-11-30: ..."},
        {"type": "search", "arguments": {"query": "Pella Vorn"}, "error": "search is off", "forced": False,
         "results": []},
        {"type": "", "arguments": {}, "error": "the call is not JSON", "forced": False, "results": [],
         "notes": [f"the call as written: {hostile}"]},
    ]
    content = "It is so [1] and [2]."
    annotations = [{"type": "url_citation", "url_citation": {"start_index": 9, "end_index": 12,
                                                             "url": f"{url}/posts/h1", "title": f"@troll: {hostile}"}},
                   {"type": "url_citation", "url_citation": {"start_index": 17, "end_index": 20,
                                                             "url": "javascript:window.__xss=3", "title": "x"}}]
    meta = {"tool_steps": steps, "annotations": annotations,
            "citations": [f"{url}/posts/h1", "javascript:window.__xss=3"]}
    new_conversation(url, "Kept", GREEDY, [{"role": "user", "content": "q"},
                                           {"role": "assistant", "content": content, "meta": meta}])
    open_chat(page, url)
    reply = page.locator(".msg.assistant")
    summaries = reply.locator(".tool-step summary")
    expect(summaries).to_have_text([f"Searched the feed for “{hostile}” · 1 post", "Calculated 12 * 7 = 84",
                                    "Fact-checked post h1 · 1 post cited",
                                    "Searched the feed for “Pella Vorn” · failed: search is off",
                                    "A tool call · failed: the call is not JSON"])
    for d in reply.locator(".tool-step").all():
        d.locator("summary").click()
    expect(reply.locator(".tool-step.error")).to_have_count(2)
    expect(reply.locator(".tool-step.error .tool-step-error")).to_have_text(
        ["Error: search is off", "Error: the call is not JSON"])
    expect(reply.locator(".tool-step-note")).to_have_text([f"the call as written: {hostile}"])  # as text
    expect(reply.locator(".tool-step[data-type='fact_check'] .tool-step-output")).to_have_text(steps[2]["output"])
    expect(reply.locator(".tool-step").first.locator(".tool-step-args dd")).to_have_text([hostile, '["troll"]'])
    expect(reply.locator(".tool-step").first.locator(".post-text")).to_have_text(hostile)

    assert page.locator("#messages").locator("img, script, [onerror]").count() == 0
    assert page.evaluate("window.__xss") is None
    assert hrefs(reply.locator(".msg-body a")) == ["/posts/h1"]  # the javascript: citation is no link
    expect(reply.locator(".msg-body")).to_have_text(content)
    day = re.compile(rf"^\[1\] @troll: {re.escape(hostile)} · .*2026.* UTC$")  # the time in the browser's locale
    expect(reply.locator(".msg-sources li.cited")).to_have_text([day, "[2] x"])
    assert hrefs(reply.locator(".msg-sources a")) == ["/posts/h1"]


def test_the_renderer_links_only_real_markers_to_safe_places(page, url):
    """ColossusMarkdown.render(text, cites): a citation becomes a link only where its offsets (code points, as the
    API counts them) cover an [n] marker and its href is a path of this server or an http(s) URL."""
    open_chat(page, url)
    cases = [  # text, cites -> the links made [(text, href)], and the text shown
        ("At Ostra [1].", [(9, 12, "/posts/p1")], [("[1]", "/posts/p1")], "At Ostra [1]."),
        ("😀 **Ostra [1]**", [(10, 13, "/posts/p1")], [("[1]", "/posts/p1")], "😀 Ostra [1]"),  # an astral character
        ("See https://a.test[1]", [(18, 21, "/posts/p1")], [("https://a.test", "https://a.test"),
                                                             ("[1]", "/posts/p1")], "See https://a.test[1]"),
        ("`code [1]` [2]", [(6, 9, "/posts/a"), (11, 14, "/posts/b")], [("[2]", "/posts/b")], "code [1] [2]"),
        ("Ostra [1]", [(6, 9, "javascript:alert(1)")], [], "Ostra [1]"),
        ("Ostra [1]", [(6, 9, "//evil.test/x")], [], "Ostra [1]"),
        ("Ostra [1]", [(6, 9, "/\\evil.test")], [], "Ostra [1]"),
        ("Ostra Labs", [(0, 5, "/posts/p1")], [], "Ostra Labs"),  # no marker there
        ("Ostra [1]", [(6, 90, "/posts/p1")], [], "Ostra [1]"),  # past the end
        ("A [1] B", [(2, 5, "/posts/a"), (3, 6, "/posts/b")], [("[1]", "/posts/a")], "A [1] B"),  # overlapping
        ("x \ue0000\ue001 [1]", [(6, 9, "/posts/p1")], [("[1]", "/posts/p1")], "x \ufffd0\ufffd [1]"),  # spoofed
        ('Ostra [1]', [(6, 9, 'https://a.test/" onclick="alert(1)')], [], "Ostra [1]"),
    ]
    report = page.evaluate("""(cases) => cases.map(([text, cites]) => {
        const d = document.createElement('div');
        d.innerHTML = ColossusMarkdown.render(text, cites.map(([start, end, href]) =>
            ({start, end, href, title: '<b onclick=alert(1)>t</b>'})));
        const bad = [...d.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => e.tagName + ' ' + a.name)
            .filter(n => !['A href', 'A target', 'A rel', 'A class', 'A title'].includes(n)));
        return {links: [...d.querySelectorAll('a')].map(a => [a.textContent, a.getAttribute('href')]),
                text: d.textContent, bad, tags: [...d.querySelectorAll('b, script, img')].length};
    })""", [[t, c] for t, c, _, _ in cases])
    for (text, _, links, shown), r in zip(cases, report, strict=True):
        assert r == {"links": [list(x) for x in links], "text": shown, "bad": [], "tags": 0}, (text, r)
