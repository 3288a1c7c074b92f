"""The web app's Feed view and a post's permalink page in a real browser: Playwright drives Debian's chromium
against a live server on 127.0.0.1 (each with its own feed). A post ingested after the page opened appears
without a reload (the live stream); search with an author filter; the permalink page shows the thread, the
current post marked, and a community note; an unknown id shows "no such post"; the Fact-check button on a
server without POST /v1/factcheck shows an error and the page stays usable; the Chat and Feed tabs switch
views without a reload.

    PYTHONPATH=. python -m pytest tests/serve/test_web_feed.py

Skipped when /usr/bin/chromium or the playwright package is missing (`make test` installs chromium)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.routing import Route

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

FACTCHECK = "/v1/factcheck"
MISLEADING = "MISINFORMED_OR_POTENTIALLY_MISLEADING"


def without_factcheck(app: FastAPI) -> None:
    """A server as it was before POST /v1/factcheck was built: that route answers 404, as any unknown route does
    (a route put first, ahead of the real one)."""

    async def gone(request):
        raise HTTPException(404)

    app.router.routes.insert(0, Route(FACTCHECK, gone, methods=["POST"]))


@pytest.fixture(scope="module")
def url(live_server) -> str:
    with live_server() as u:
        yield u


@pytest.fixture(scope="module")
def bare_url(live_server):
    """A live server without POST /v1/factcheck."""
    with live_server(prepare=without_factcheck) as u:
        yield u


def api(url: str, method: str, path: str, body: dict | None = None) -> dict:
    r = httpx.request(method, f"{url}{path}", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def ingest(url: str, *posts: dict) -> None:
    api(url, "POST", "/v1/posts", {"posts": list(posts)})


def post(pid: str, text: str, author: str = "ann", when: str = "2026-11-30T09:00:00Z", **more) -> dict:
    return {"id": pid, "author": author, "created_at": when, "text": text, **more}


def mark_page(page) -> None:
    """A value that only this load of the page holds: still there later, no reload happened."""
    page.evaluate("window.__sameLoad = true")


def same_load(page) -> bool:
    return page.evaluate("window.__sameLoad === true")


def open_feed(page, url: str) -> None:
    page.goto(f"{url}/feed")
    page.wait_for_selector("#feed-view[data-ready='true']")
    expect(page.locator("#feed-live")).to_have_attribute("data-state", "live")


def test_a_post_ingested_after_the_page_opened_appears_without_a_reload(page, url):
    ingest(url, post("live-old", "An older post, there before the page opened.", when="2026-12-10T08:00:00Z"))
    open_feed(page, url)
    mark_page(page)
    expect(page.locator("#feed-list .post-card[data-id='live-old']")).to_be_visible()
    assert page.locator("#feed-list .post-card[data-id='live-new']").count() == 0

    ingest(url, post("live-new", "Ostra Labs opened a second office.", "ostra", "2026-12-10T09:00:00Z"))
    fresh = page.locator("#feed-list .post-card[data-id='live-new']")
    expect(fresh).to_be_visible()
    assert same_load(page)
    expect(fresh.locator(".post-text")).to_have_text("Ostra Labs opened a second office.")
    expect(fresh.locator(".post-author")).to_have_text("@ostra")
    ids = page.locator("#feed-list .post-card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert ids.index("live-new") < ids.index("live-old")  # newest first
    link = fresh.locator("a.post-link")
    assert link.get_attribute("href") == "/posts/live-new"

    link.click()  # its permalink, in the same page
    page.wait_for_url(f"{url}/posts/live-new")
    expect(page.locator("#post-thread .post.current .post-card[data-id='live-new']")).to_be_visible()
    assert same_load(page) and page.is_hidden("#feed-view")
    page.go_back()
    expect(page.locator("#feed-view")).to_be_visible()
    assert same_load(page)


def test_search_with_an_author_filter_and_a_date(page, url):
    ingest(url, post("s-ann", "Vorn harbour reopened today.", "ann", "2026-11-20T10:00:00Z"),
           post("s-bob", "Vorn harbour reopened, says Bob.", "bob", "2026-11-21T10:00:00Z"),
           post("s-bob-old", "Vorn harbour closed for repairs.", "bob", "2026-10-01T10:00:00Z"))
    open_feed(page, url)
    page.fill("#feed-q", "vorn harbour")
    page.fill("#feed-author", "@bob")
    page.click("#feed-search button[type='submit']")
    hits = page.locator("#feed-hits .post-card")
    expect(hits).to_have_count(2)
    found = hits.evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert sorted(found) == ["s-bob", "s-bob-old"]
    assert page.locator("#feed-hits a.post-link").evaluate_all("as => as.map(a => a.getAttribute('href'))") == [
        f"/posts/{i}" for i in found]
    assert "author=%40bob" in page.url and "q=vorn+harbour" in page.url  # the search is in the address

    page.fill("#feed-from", "2026-11-01")
    page.click("#feed-search button[type='submit']")
    expect(hits).to_have_count(1)
    expect(hits.first).to_have_attribute("data-id", "s-bob")
    expect(page.locator("#feed-results-title")).to_have_text("1 post found")

    page.fill("#feed-author", "not@handle")  # the server's 400, shown as it names the field
    page.click("#feed-search button[type='submit']")
    expect(page.locator("#feed-status.error")).to_contain_text("author must be a handle")
    expect(page.locator("#feed-results")).to_be_hidden()

    page.click("#feed-clear")
    expect(page.locator("#feed-q")).to_have_value("")
    assert page.url == f"{url}/feed"


def test_the_permalink_page_shows_the_thread_the_current_post_and_its_note(page, url):
    hostile = '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script>'
    ingest(url, post("t-root", "Pella Vorn joined Ostra Labs today.", "pella", "2026-11-01T09:00:00Z"),
           post("t-reply", "She joined in 2025, not today.", "news", "2026-11-01T10:00:00Z", reply_to="t-root"),
           post("t-deep", hostile, "troll", "2026-11-01T11:00:00Z", reply_to="t-reply"),
           post("t-other", "Not in this thread.", "ann", "2026-11-01T12:00:00Z"))
    api(url, "POST", "/v1/posts/t-root/notes", {"classification": MISLEADING, "summary": "She joined in 2025.",
                                                "sources": ["/posts/t-reply", "https://ostra.example/2025"]})
    page.goto(f"{url}/posts/t-reply")
    page.wait_for_selector("#post-view[data-ready='true']")
    mark_page(page)
    cards = page.locator("#post-thread .post-card")
    expect(cards).to_have_count(3)
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.id)") == ["t-root", "t-reply", "t-deep"]
    current = page.locator("#post-thread .post[aria-current='page']")
    expect(current.locator(".post-card")).to_have_attribute("data-id", "t-reply")
    expect(current.locator(".post-text")).to_have_text("She joined in 2025, not today.")
    expect(current.locator(".post-author")).to_have_text("@news")
    expect(current.locator("time")).to_have_attribute("datetime", "2026-11-01T10:00:00Z")
    assert page.locator("#post-thread a.post-link").evaluate_all("as => as.map(a => a.getAttribute('href'))") == [
        "/posts/t-root", "/posts/t-reply", "/posts/t-deep"]
    expect(page.locator(".post-card[data-id='t-deep'] .post-text")).to_have_text(hostile)  # text, not markup
    assert page.locator("#post-view img, #post-view script").count() == 0 and page.evaluate("window.__xss") is None
    expect(page.locator(".post-card[data-id='t-root'] .post-note-count")).to_have_text("1 community note")
    expect(page.locator("#post-notes")).to_contain_text("No community note on this post yet.")

    page.locator(".post-card[data-id='t-root'] a.post-link").click()  # the ancestor's own page, with its note
    page.wait_for_url(f"{url}/posts/t-root")
    expect(page.locator("#post-thread .post[aria-current='page'] .post-card")).to_have_attribute("data-id", "t-root")
    note = page.locator("#post-notes .note")
    expect(note).to_have_count(1)
    expect(note.locator(".note-classification")).to_have_text("Misleading or potentially misleading")
    expect(note.locator(".note-status")).to_have_text("Needs more ratings")
    expect(note.locator(".note-summary")).to_have_text("She joined in 2025.")
    expect(note.locator(".note-by")).to_contain_text("@colossus")
    assert note.locator(".note-sources a").evaluate_all("as => as.map(a => a.getAttribute('href'))") == [
        "/posts/t-reply", "https://ostra.example/2025"]
    assert note.locator(".note-sources a").nth(1).get_attribute("rel") == "noopener noreferrer"
    assert same_load(page)


def test_an_unknown_post_shows_that_there_is_no_such_post(page, url):
    page.goto(f"{url}/posts/no-such-id")
    page.wait_for_selector("#post-view[data-ready='true']")
    expect(page.locator("#post-missing")).to_be_visible()
    expect(page.locator("#post-missing")).to_contain_text("No such post")
    expect(page.locator("#post-missing-id")).to_have_text("no-such-id")
    expect(page.locator("#post-title")).to_have_text("No such post")
    assert page.is_hidden("#post-main")


def test_fact_check_on_a_server_without_the_endpoint_shows_an_error(page, bare_url):
    ingest(bare_url, post("f1", "Ostra Labs moved to Vorn."))
    page.goto(f"{bare_url}/posts/f1")
    page.wait_for_selector("#post-view[data-ready='true']")
    page.click("#factcheck")
    result = page.locator("#factcheck-result.error[role='alert']")
    expect(result).to_contain_text("Fact-check is not available on this server")
    expect(result).to_contain_text("POST /v1/factcheck")
    expect(page.locator("#factcheck")).to_be_enabled()
    expect(page.locator("#factcheck")).to_have_text("Fact-check")
    expect(page.locator("#post-thread .post.current .post-text")).to_have_text("Ostra Labs moved to Vorn.")


def test_fact_check_shows_the_verdict_its_evidence_and_the_note_it_wrote(page, live_server, tool_model_dir):
    import tool_model as tm

    with live_server(model=tool_model_dir) as url:  # a model trained to check (tests/tool_model.py)
        ingest(url, tm.POST.to_dict(), tm.FALSE_POST.to_dict())
        page.goto(f"{url}/posts/{tm.FALSE_POST.id}")
        page.wait_for_selector("#post-view[data-ready='true']")
        page.click("#factcheck")
        verdict = page.locator("#factcheck-result .verdict")
        expect(verdict).to_be_visible(timeout=300_000)  # the model runs: a bound, not a speed
        expect(verdict.locator(".verdict-label")).to_have_text("Refuted by the feed")
        hrefs = verdict.locator(".evidence-link").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert hrefs == [f"/posts/{tm.POST.id}"]
        note = httpx.get(f"{url}/v1/posts/{tm.FALSE_POST.id}").json()["notes"][0]
        assert note["author"] == "colossus"
        expect(page.locator("#post-notes .note")).to_contain_text(note["summary"])  # shown without a reload


def test_the_chat_and_feed_tabs_switch_views_without_a_reload(page, url):
    page.goto(url)
    page.wait_for_selector("#app[data-ready='true']")
    mark_page(page)
    expect(page.locator("#tab-chat")).to_have_attribute("aria-current", "page")
    page.click("#tab-feed")
    page.wait_for_url(f"{url}/feed")
    page.wait_for_selector("#feed-view[data-ready='true']")
    assert page.is_hidden("#chat-view") and page.is_visible("#feed-view")
    expect(page.locator("#tab-feed")).to_have_attribute("aria-current", "page")
    page.click("#tab-chat")
    page.wait_for_url(f"{url}/")
    expect(page.locator("#chat-view")).to_be_visible()
    assert page.is_hidden("#feed-view") and same_load(page)
    page.go_back()  # the back button returns to the Feed
    expect(page.locator("#feed-view")).to_be_visible()
    assert same_load(page)


def test_a_narrow_screen_has_no_sideways_scroll_and_reaches_the_tabs(browser, url, page_timeout_ms):
    ingest(url, post("n-long", "x" * 600, "narrow", "2026-11-15T09:00:00Z"))
    context = browser.new_context(viewport={"width": 375, "height": 740})
    page = context.new_page()
    page.set_default_timeout(page_timeout_ms)
    for path in ("/feed", "/posts/n-long"):
        page.goto(f"{url}{path}")
        page.wait_for_selector(f"#{'feed' if path == '/feed' else 'post'}-view[data-ready='true']")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    assert page.is_hidden("#tab-chat")
    page.click("#post-view .sidebar-toggle")  # the drawer, with the tabs
    page.click("#tab-chat")
    page.wait_for_url(f"{url}/")
    expect(page.locator("#chat-view")).to_be_visible()
    page.wait_for_selector("#sidebar .conversation-list", state="hidden")
    context.close()
