/* What a chat reply looked up, and what it cites: the tool steps (a search, a calculation, a fact-check), each
 * folded in a <details> above the reply's text, and the cited posts listed under it, each a link to its
 * permalink page. The stream reports the steps as they run (delta.tool_steps) and, after the text, the
 * url_citation annotations of the [n] markers; chat.js keeps both in the message's meta, so that a
 * conversation reopened shows them again.
 *
 *     view.append(ColossusSources.steps(meta.tool_steps));       // one folded <details> per step
 *     ColossusMarkdown.render(content, ColossusSources.cites(meta)); // [n] linked to the post it cites
 *     const list = ColossusSources.cited(meta);                  // <section> of the cited posts, or null
 *
 * Every text of a step, a post or a citation is set with textContent; a link is made only to a post's page
 * on this server (/posts/ID) or to an http(s) URL. */
(function (global) {
  "use strict";

  const posts = () => global.ColossusPosts;
  const make = (...args) => posts().make(...args);
  const count = (n, what) => `${n} ${what}${n === 1 ? "" : "s"}`;
  const quoted = (s) => `“${String(s)}”`;

  /* The meta a reply keeps of what streamCompletion read: only what there is, so that a plain reply stays small. */
  function metaOf(r) {
    const meta = {};
    if (r.toolSteps.length) meta.tool_steps = r.toolSteps;
    if (r.annotations.length) meta.annotations = r.annotations;
    if (r.citations && r.citations.length) meta.citations = r.citations;
    return meta;
  }

  const list = (x) => (Array.isArray(x) ? x : []);

  /* The posts the steps found, by permalink URL: a cited URL that one of them has opens that post's page here,
   * whatever host the server wrote in its permalinks. */
  function found(meta) {
    const byUrl = new Map();
    for (const step of list(meta && meta.tool_steps)) {
      for (const p of list(step && step.results)) {
        if (p && typeof p.url === "string" && typeof p.id === "string" && !byUrl.has(p.url)) byUrl.set(p.url, p);
      }
    }
    return byUrl;
  }

  /* Where a citation's URL goes: the post's page in this app, or the URL itself if it is http(s); else null. */
  function hrefOf(url, byUrl) {
    const post = byUrl.get(url);
    if (post) return posts().permalink(post.id);
    let u;
    try {
      u = new URL(String(url), location.href);
    } catch (_) {
      return null;
    }
    if (u.origin === location.origin && /^\/posts\/[^/]+\/?$/.test(u.pathname)) return u.pathname;
    return /^https?:$/.test(u.protocol) ? u.href : null;
  }

  function link(href, cls) {
    const a = make("a", cls);
    a.href = href;
    if (!href.startsWith("/")) {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    return a;
  }

  // ---- the tool steps ---------------------------------------------------------------------------------

  function summaryOf(step) {
    const args = step.arguments && typeof step.arguments === "object" ? step.arguments : {};
    const n = list(step.results).length;
    const failed = step.error ? ` · failed: ${step.error}` : "";
    if (step.type === "search") {
      const what = typeof args.query === "string" ? `Searched the feed for ${quoted(args.query)}` : "Searched the feed";
      return `${what}${failed || ` · ${count(n, "post")}`}${step.forced ? " · search mode on" : ""}`;
    }
    if (step.type === "calculator") {
      const shown = typeof step.output === "string" && !step.error ? ` = ${step.output}` : "";
      return `Calculated ${args.expression === undefined ? "" : String(args.expression)}${shown}${failed}`;
    }
    if (step.type === "fact_check") {
      const what = typeof args.post_id === "string" ? `post ${args.post_id}`
        : typeof args.claim === "string" ? quoted(args.claim) : "a claim";
      return `Fact-checked ${what}${failed || ` · ${count(n, "post")} cited`}`;
    }
    return `${step.type ? `Called ${step.type}` : "A tool call"}${failed}`;
  }

  function argumentsView(args) {
    const dl = make("dl", "tool-step-args");
    for (const [k, v] of Object.entries(args)) {
      dl.append(make("dt", null, k), make("dd", null, typeof v === "string" ? v : JSON.stringify(v)));
    }
    return dl;
  }

  function resultView(p) {
    const li = make("li", "tool-step-post");
    li.append(posts().card({ id: String(p.id), author: String(p.author), created_at: String(p.created_at),
      text: String(p.text) }));
    return li;
  }

  function stepView(step) {
    const view = make("details", "tool-step");
    view.dataset.type = step.type || "unknown";
    if (step.error) view.classList.add("error");
    view.append(make("summary", null, summaryOf(step)));
    const args = step.arguments && typeof step.arguments === "object" ? step.arguments : {};
    const onlyQuery = step.type === "search" && Object.keys(args).every((k) => k === "query");
    if (Object.keys(args).length && !onlyQuery) view.append(argumentsView(args));
    if (step.error) view.append(make("p", "tool-step-error", `Error: ${step.error}`));
    for (const note of list(step.notes)) {
      if (typeof note === "string") view.append(make("p", "tool-step-note", note));
    }
    if (typeof step.output === "string" && step.type !== "search") {
      view.append(make("pre", "tool-step-output", step.output));
    }
    const results = list(step.results).filter((p) => p && typeof p.id === "string");
    if (results.length) {
      const ol = make("ol", "posts tool-step-posts");
      ol.append(...results.map(resultView));
      view.append(ol);
    } else if (step.type === "search" && !step.error) {
      view.append(make("p", "hint", "No post matched."));
    }
    return view;
  }

  /* The steps of a reply, in the order they ran; a container that is hidden while there are none. */
  function steps(stepList) {
    const box = make("div", "tool-steps");
    box.setAttribute("aria-label", "What the reply looked up");
    box.hidden = true;
    for (const s of list(stepList)) add(box, s);
    return box;
  }

  function add(box, step) {
    if (!step || typeof step !== "object") return;
    box.append(stepView(step));
    box.hidden = false;
  }

  // ---- citations --------------------------------------------------------------------------------------

  function annotationsOf(meta) {
    return list(meta && meta.annotations).map((a) => a && a.type === "url_citation" && a.url_citation)
      .filter((c) => c && typeof c.url === "string");
  }

  /* The [n] markers of the content as ColossusMarkdown.render takes them: {start, end (code points, as the API
   * counts), href, title}. */
  function cites(meta) {
    const byUrl = found(meta);
    return annotationsOf(meta).map((c) => ({ start: c.start_index, end: c.end_index, href: hrefOf(c.url, byUrl),
      title: typeof c.title === "string" ? c.title : "" })).filter((c) => c.href);
  }

  /* The cited posts in the order of their numbers: the annotations' URLs by first use (their titles), then any
   * citation with no marker in the text. Null when the reply cites nothing. */
  function cited(meta) {
    const byUrl = found(meta);
    const titles = new Map();
    for (const c of annotationsOf(meta)) if (!titles.has(c.url)) titles.set(c.url, c.title);
    for (const url of list(meta && meta.citations)) {
      if (typeof url === "string" && !titles.has(url)) titles.set(url, null);
    }
    if (!titles.size) return null;
    const section = make("section", "msg-sources");
    section.setAttribute("aria-label", "Cited posts");
    const ol = make("ol");
    let n = 0;
    for (const [url, title] of titles) {
      n += 1;
      const post = byUrl.get(url);
      const li = make("li", "cited");
      li.dataset.number = String(n);
      const href = hrefOf(url, byUrl);
      const a = href ? link(href, "cited-link") : make("span", "cited-link");
      const name = typeof title === "string" && title ? title
        : post ? `@${post.author}: ${post.text}` : url;
      a.append(make("span", "cited-number", `[${n}]`), document.createTextNode(` ${name}`));
      li.append(a);
      if (post && post.created_at) li.append(make("span", "sep", " · "), posts().timeOf(String(post.created_at)));
      ol.append(li);
    }
    section.append(make("p", "msg-sources-title", "Cited posts"), ol);
    return section;
  }

  global.ColossusSources = { steps, add, cites, cited, metaOf };
})(window);
