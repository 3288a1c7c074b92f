/* How the web app shows posts and community notes (the Feed view and a post's permalink page share it).
 *
 *     list.append(ColossusPosts.card(post));         // author, time (the link to its permalink), text
 *     notes.append(ColossusPosts.note(note));        // classification, status, summary, sources as links
 *
 * Every text of a post or a note is set with textContent: nothing a post says becomes HTML. A link is
 * made only to a path of this server (/posts/ID) or to an http(s) URL, never from any other scheme. */
(function (global) {
  "use strict";

  const CLASSIFICATIONS = {
    MISINFORMED_OR_POTENTIALLY_MISLEADING: "Misleading or potentially misleading",
    NOT_MISLEADING: "Not misleading",
  };
  const STATUSES = {
    NEEDS_MORE_RATINGS: "Needs more ratings",
    CURRENTLY_RATED_HELPFUL: "Rated helpful",
    CURRENTLY_RATED_NOT_HELPFUL: "Rated not helpful",
  };

  const permalink = (id) => `/posts/${encodeURIComponent(id)}`;

  function make(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function timeOf(iso) {
    const t = make("time");
    t.dateTime = iso;
    const d = new Date(iso);
    t.textContent = Number.isNaN(d.getTime()) ? iso : `${d.toLocaleString(undefined,
      { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" })} UTC`;
    return t;
  }

  /* A link to a URL of a note or an evidence: a path of this server or an http(s) URL; otherwise the text. */
  function safeLink(url, label) {
    const local = typeof url === "string" && url.startsWith("/") && !url.startsWith("//");
    if (!local && !/^https?:\/\/[^\s]+$/i.test(String(url))) return make("span", "url", String(url));
    const a = make("a", null, label || url);
    a.href = url;
    if (!local) {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    return a;
  }

  /* A post: @author, the time linking to its permalink, the text, what it replies to, how many notes. */
  function card(post, opts = {}) {
    const view = make("article", "post-card");
    view.dataset.id = post.id;
    const head = make("header", "post-head");
    const author = make("span", "post-author", `@${post.author}`);
    const link = make("a", "post-link");
    link.href = permalink(post.id);
    link.setAttribute("aria-label", `Post by @${post.author}, ${post.created_at}: open its page`);
    link.append(timeOf(post.created_at));
    head.append(author, make("span", "sep", "·"), link);
    if (typeof opts.score === "number") head.append(make("span", "post-score", `score ${opts.score.toFixed(2)}`));
    view.append(head);
    if (post.reply_to) {
      const reply = make("p", "post-reply", "Replying to ");
      const to = make("a", null, `post ${post.reply_to}`);
      to.href = permalink(post.reply_to);
      reply.append(to);
      view.append(reply);
    }
    view.append(make("p", "post-text", post.text));
    const notes = Array.isArray(post.notes) ? post.notes.length : 0;
    if (notes && !opts.hideNoteCount) {
      view.append(make("p", "post-note-count", `${notes} community note${notes === 1 ? "" : "s"}`));
    }
    return view;
  }

  /* A community note: what it says of the post, its status, its text, its sources, who wrote it and when. */
  function note(n) {
    const view = make("article", "note");
    view.dataset.classification = n.classification;
    view.dataset.status = n.status;
    const head = make("header", "note-head");
    head.append(make("strong", "note-classification", CLASSIFICATIONS[n.classification] || n.classification),
      make("span", "note-status", STATUSES[n.status] || n.status));
    const sources = make("ul", "note-sources");
    for (const url of n.sources || []) {
      const li = make("li");
      li.append(safeLink(url));
      sources.append(li);
    }
    const by = make("p", "note-by", `Written by @${n.author} · `);
    by.append(timeOf(n.createdAt));
    view.append(head, make("p", "note-summary", n.summary), make("p", "note-sources-title", "Sources"), sources, by);
    return view;
  }

  global.ColossusPosts = { card, note, permalink, safeLink, make, timeOf, CLASSIFICATIONS, STATUSES };
})(window);
