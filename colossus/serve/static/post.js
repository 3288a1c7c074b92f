/* A post's permalink page (/posts/ID): the post in its thread (its ancestors through reply_to above it, its
 * replies below, the post itself marked as the current one), its community notes, and a Fact-check button.
 *
 * GET /v1/posts/ID answers {post, thread, notes}; 404 shows the "no such post" state. Fact-check sends POST
 * /v1/factcheck {"post_id": ID} and shows its answer: {label: SUPPORTS | REFUTES | NOT ENOUGH INFO,
 * explanation, evidence: [{id, url, author, created_at, text}], note: a note or null}; a note it wrote is
 * added to the notes. An error answer (a server without that route answers 404) is shown as an error, and
 * the page stays usable.
 *
 *     ColossusPost.show("1870");   // by views.js, when the path is /posts/1870
 */
(function () {
  "use strict";

  const { api, HttpError } = window.ColossusAPI;
  const { card, note, permalink, make, safeLink } = window.ColossusPosts;
  const LABELS = { SUPPORTS: "Supported by the feed", REFUTES: "Refuted by the feed",
    "NOT ENOUGH INFO": "Not enough information in the feed" };

  const $ = (id) => document.getElementById(id);
  const el = {
    view: $("post-view"), title: $("post-title"), status: $("post-status"), missing: $("post-missing"),
    missingId: $("post-missing-id"), main: $("post-main"), thread: $("post-thread"),
  };

  const state = { id: null, generation: 0, factchecking: false };

  function setStatus(text, isError) {
    el.status.textContent = text || "";
    el.status.classList.toggle("error", Boolean(isError));
  }

  function message(e) {
    return e instanceof HttpError && e.status === 401 ? "This server needs an API key: enter it in the Chat view."
      : e.message;
  }

  function notesSection(notes) {
    const section = make("section", "notes");
    section.id = "post-notes";
    section.setAttribute("aria-labelledby", "post-notes-title");
    const h = make("h2", null, notes.length ? `Community notes (${notes.length})` : "Community notes");
    h.id = "post-notes-title";
    const list = make("ul", "note-list");
    for (const n of notes) {
      const li = make("li");
      li.append(note(n));
      list.append(li);
    }
    section.append(h, notes.length ? list : make("p", "hint", "No community note on this post yet."));
    return section;
  }

  function factcheckSection(postId) {
    const section = make("section", "factcheck");
    section.setAttribute("aria-label", "Fact-check");
    const b = make("button", "primary", "Fact-check");
    b.type = "button";
    b.id = "factcheck";
    b.setAttribute("aria-label", "Fact-check this post against the feed");
    const result = make("div", "factcheck-result");
    result.id = "factcheck-result";
    result.setAttribute("aria-live", "polite");
    b.addEventListener("click", () => factcheck(postId, b, result));
    section.append(b, result);
    return section;
  }

  function render(answer) {
    const { post, thread, notes } = answer;
    el.title.textContent = `Post by @${post.author}`;
    document.title = `@${post.author}: ${post.text.slice(0, 50)} · Colossus`;
    el.thread.replaceChildren(...thread.map((p) => {
      const li = make("li", p.id === post.id ? "post current" : "post");
      const current = p.id === post.id;
      if (current) li.setAttribute("aria-current", "page");
      li.append(card(p, { hideNoteCount: current }));
      if (current) li.append(notesSection(notes), factcheckSection(post.id));
      return li;
    }));
    el.missing.hidden = true;
    el.main.hidden = false;
  }

  async function show(id) {
    const generation = ++state.generation;
    state.id = id;
    el.view.dataset.ready = "false";
    setStatus("Loading…");
    el.title.textContent = "Post";
    try {
      const answer = await api("GET", `/v1/posts/${encodeURIComponent(id)}`);
      if (generation !== state.generation) return;
      render(answer);
      setStatus("");
    } catch (e) {
      if (generation !== state.generation) return;
      el.main.hidden = true;
      if (e instanceof HttpError && e.status === 404) {
        el.title.textContent = "No such post";
        document.title = "No such post · Colossus";
        el.missingId.textContent = id;
        el.missing.hidden = false;
        setStatus("");
      } else {
        el.missing.hidden = true;
        setStatus(message(e), true);
      }
    }
    el.view.dataset.ready = "true"; // for tests and scripts: the post, or its absence, is shown
  }

  async function refreshNotes(postId) {
    const answer = await api("GET", `/v1/posts/${encodeURIComponent(postId)}/notes`);
    if (state.id !== postId) return;
    document.getElementById("post-notes")?.replaceWith(notesSection(answer.data));
  }

  function evidenceItem(ev) {
    const li = make("li", "evidence");
    const head = make("p", "evidence-head");
    const local = typeof ev.url === "string" && ev.url.startsWith("/posts/");
    const link = local ? safeLink(ev.url, `@${ev.author}`) : make("a", null, `@${ev.author}`);
    if (!local) link.href = permalink(ev.id);
    link.className = "evidence-link";
    head.append(link);
    if (ev.created_at) head.append(make("span", "sep", " · "), window.ColossusPosts.timeOf(ev.created_at));
    li.append(head, make("p", "evidence-text", ev.text || ""));
    return li;
  }

  function renderVerdict(result, answer) {
    const verdict = make("div", "verdict");
    verdict.dataset.label = answer.label;
    verdict.append(make("strong", "verdict-label", LABELS[answer.label] || String(answer.label)),
      make("p", "verdict-explanation", answer.explanation || ""));
    const evidence = Array.isArray(answer.evidence) ? answer.evidence : [];
    if (evidence.length) {
      const list = make("ul", "evidence-list");
      list.append(...evidence.map(evidenceItem));
      verdict.append(make("p", "evidence-title", "Evidence"), list);
    } else {
      verdict.append(make("p", "hint", "No post of the feed was cited."));
    }
    result.replaceChildren(verdict);
  }

  async function factcheck(postId, button, result) {
    if (state.factchecking) return;
    state.factchecking = true;
    button.disabled = true;
    button.textContent = "Checking…";
    result.classList.remove("error");
    result.removeAttribute("role");
    result.replaceChildren(make("p", "hint", "Checking the post against the feed…"));
    try {
      const answer = await api("POST", "/v1/factcheck", { post_id: postId });
      if (state.id !== postId) return;
      if (!answer || typeof answer !== "object" || !answer.label) throw new Error("the answer has no label");
      renderVerdict(result, answer);
      if (answer.note) await refreshNotes(postId);
    } catch (e) {
      if (state.id !== postId) return;
      const missing = e instanceof HttpError && (e.status === 404 || e.status === 405);
      result.classList.add("error");
      result.setAttribute("role", "alert");
      result.replaceChildren(make("p", "factcheck-error", missing
        ? `Fact-check is not available on this server (${e.message}).` : `Fact-check failed: ${message(e)}`));
    } finally {
      state.factchecking = false;
      button.disabled = false;
      button.textContent = "Fact-check";
    }
  }

  function hide() {
    state.generation += 1; // an answer still on its way is not shown
  }

  window.ColossusPost = { show, hide };
})();
