/* The Feed view (/feed): the newest posts, live, and a search with the filters of GET /v1/posts/search.
 *
 * The list is GET /v1/posts (newest first; "Older posts" pages on with before=the last id). Live posts come
 * from GET /v1/posts/stream, opened with after=the page's last_seq: every post stored since the page was read
 * arrives once, in order, each event's id being its change number. When the stream breaks it is opened again
 * from the last id seen (after the server's retry time, longer each time it fails), so no post is missed; it
 * is closed while another view is shown, and caught up when the Feed is shown again. A search is kept in
 * the address (/feed?q=...&author=...), so it can be shared and the back button returns to it.
 *
 *     ColossusFeed.show();   // by views.js, when the path is /feed
 *     ColossusFeed.hide();
 */
(function () {
  "use strict";

  const { api, readEvents, HttpError } = window.ColossusAPI;
  const { card, make } = window.ColossusPosts;
  const PAGE = 20;
  const MAX_BACKOFF_MS = 30_000;

  const $ = (id) => document.getElementById(id);
  const el = {
    view: $("feed-view"), live: $("feed-live"), list: $("feed-list"), more: $("feed-more"), status: $("feed-status"),
    form: $("feed-search"), q: $("feed-q"), from: $("feed-from"), to: $("feed-to"), author: $("feed-author"),
    clear: $("feed-clear"), results: $("feed-results"), hits: $("feed-hits"), resultsTitle: $("feed-results-title"),
  };

  const state = {
    loaded: false, // the first page is shown
    shown: new Map(), // post id -> its list item, in the newest list
    lastId: null, // the oldest post shown: the next page's `before`
    hasMore: false,
    seq: null, // the change number of the last post seen: where the stream resumes
    controller: null, // AbortController of the open stream
    visible: false,
    failures: 0,
    timer: null,
  };

  function setStatus(text, isError) {
    el.status.textContent = text || "";
    el.status.classList.toggle("error", Boolean(isError));
  }

  function report(e) {
    setStatus(e instanceof HttpError && e.status === 401
      ? "This server needs an API key: enter it in the Chat view." : e.message, true);
  }

  function setLive(mode, text) {
    el.live.dataset.state = mode; // live, connecting, offline
    el.live.textContent = text;
  }

  function item(post, isNew) {
    const li = make("li", isNew ? "post new" : "post");
    li.append(card(post));
    return li;
  }

  const timeOf = (post) => Date.parse(post.created_at);

  /* A live post goes where the list's order (newest created_at first) puts it; older than all posts shown
   * while older pages remain, it is left to those pages. */
  function insertLive(post) {
    if (state.shown.has(post.id)) return;
    const t = timeOf(post);
    let before = null;
    for (const li of el.list.children) {
      if (Number(li.dataset.time) <= t) {
        before = li;
        break;
      }
    }
    if (!before && state.hasMore) return;
    const li = item(post, true);
    li.dataset.time = String(t);
    el.list.insertBefore(li, before);
    state.shown.set(post.id, li);
    el.list.querySelector(".empty")?.remove();
  }

  function append(posts) {
    for (const post of posts) {
      if (state.shown.has(post.id)) continue;
      const li = item(post, false);
      li.dataset.time = String(timeOf(post));
      el.list.append(li);
      state.shown.set(post.id, li);
    }
  }

  function renderEmpty() {
    if (el.list.children.length) return;
    const li = make("li", "empty", "No posts yet. New ones appear here as they are added.");
    el.list.append(li);
  }

  async function loadFirstPage() {
    const page = await api("GET", `/v1/posts?limit=${PAGE}`);
    el.list.replaceChildren();
    state.shown.clear();
    state.hasMore = page.has_more;
    state.lastId = page.last_id;
    state.seq = page.last_seq;
    append(page.data);
    renderEmpty();
    el.more.hidden = !state.hasMore;
    state.loaded = true;
    el.view.dataset.ready = "true"; // for tests and scripts: the first page is shown
  }

  async function loadMore() {
    if (!state.hasMore || !state.lastId) return;
    el.more.disabled = true;
    try {
      const page = await api("GET", `/v1/posts?limit=${PAGE}&before=${encodeURIComponent(state.lastId)}`);
      state.hasMore = page.has_more;
      if (page.last_id) state.lastId = page.last_id;
      append(page.data);
      el.more.hidden = !state.hasMore;
    } catch (e) {
      report(e);
    } finally {
      el.more.disabled = false;
    }
  }

  // ---- the live stream ------------------------------------------------------------------------------

  function openStream() {
    if (state.controller || !state.visible) return;
    clearTimeout(state.timer);
    const controller = new AbortController();
    state.controller = controller;
    setLive("connecting", "Connecting…");
    const path = `/v1/posts/stream${state.seq === null ? "" : `?after=${state.seq}`}`;
    readEvents(path, controller.signal, () => {
      state.failures = 0;
      setLive("live", "Live");
    }, (e) => {
      let post;
      try {
        post = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      if (e.id !== null && /^\d+$/.test(e.id)) state.seq = Number(e.id);
      insertLive(post);
    }).then((end) => {
      if (state.controller === controller) state.controller = null;
      if (end.aborted || !state.visible) {
        setLive("offline", "Paused");
        return;
      }
      if (end.status === 401) {
        setLive("offline", "Offline");
        setStatus("This server needs an API key: enter it in the Chat view.", true);
        return;
      }
      state.failures += 1;
      const wait = end.retryAfter ? end.retryAfter * 1000
        : Math.min(MAX_BACKOFF_MS, (end.retryMs || 2000) * 2 ** (state.failures - 1));
      setLive("offline", `Reconnecting in ${Math.round(wait / 1000)} s (${end.error})`);
      state.timer = setTimeout(openStream, wait);
    });
  }

  function closeStream() {
    clearTimeout(state.timer);
    if (state.controller) state.controller.abort();
    state.controller = null;
  }

  // ---- search ---------------------------------------------------------------------------------------

  function searchParams() {
    const p = new URLSearchParams();
    if (el.q.value.trim()) p.set("q", el.q.value.trim());
    if (el.from.value) p.set("from_date", el.from.value);
    if (el.to.value) p.set("to_date", el.to.value);
    for (const a of el.author.value.split(/[\s,]+/).filter(Boolean)) p.append("author", a);
    return p;
  }

  function fillForm(p) {
    el.q.value = p.get("q") || "";
    el.from.value = p.get("from_date") || "";
    el.to.value = p.get("to_date") || "";
    el.author.value = p.getAll("author").join(" ");
  }

  async function search(p) {
    if (!p.get("q")) {
      el.results.hidden = true;
      setStatus("Type words to search for.", true);
      return;
    }
    setStatus("Searching…");
    try {
      const answer = await api("GET", `/v1/posts/search?${p.toString()}&limit=50`);
      el.hits.replaceChildren(...answer.data.map((hit) => {
        const li = make("li", "post");
        li.append(card(hit, { score: hit.score }));
        return li;
      }));
      el.resultsTitle.textContent = answer.data.length
        ? `${answer.data.length} post${answer.data.length === 1 ? "" : "s"} found` : "No post matches";
      el.results.hidden = false;
      setStatus("");
    } catch (e) {
      el.results.hidden = true;
      report(e);
    }
  }

  function clearSearch() {
    fillForm(new URLSearchParams());
    el.results.hidden = true;
    el.hits.replaceChildren();
    setStatus("");
    history.replaceState(history.state, "", "/feed");
  }

  // ---- the view -------------------------------------------------------------------------------------

  async function show() {
    state.visible = true;
    const p = new URLSearchParams(location.search);
    fillForm(p);
    if (p.get("q")) search(p);
    else el.results.hidden = true;
    if (!state.loaded) {
      try {
        await loadFirstPage();
      } catch (e) {
        report(e);
        setLive("offline", "Offline");
        return;
      }
    }
    openStream();
  }

  function hide() {
    state.visible = false;
    closeStream();
  }

  el.form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = searchParams();
    history.pushState(history.state, "", `/feed${p.toString() ? `?${p}` : ""}`);
    search(p);
  });
  el.clear.addEventListener("click", clearSearch);
  el.more.addEventListener("click", loadMore);

  window.ColossusFeed = { show, hide };
})();
