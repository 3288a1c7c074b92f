/* Which view of the web app is shown, from the address: / the chat, /feed the live feed, /posts/ID a post's
 * permalink. One page holds the three (the server answers all three paths with it); following a link to one
 * of them, or the back button, changes the view without a reload, so a reply still streaming in the chat goes
 * on while the Feed is open. The Chat and Feed tabs sit at the top of the sidebar.
 *
 * #app[data-view] says which view is shown (chat, feed or post), for the styles, chat.js and tests. */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const app = $("app");
  const views = { chat: $("chat-view"), feed: $("feed-view"), post: $("post-view") };
  const tabs = { chat: $("tab-chat"), feed: $("tab-feed") };

  /* The view of a path -> [view, post id]; null for a path that is no view of this page. */
  function route(path) {
    if (path === "/" || path === "/index.html") return ["chat", null];
    if (path === "/feed" || path === "/feed/") return ["feed", null];
    const m = /^\/posts\/([^/]+)\/?$/.exec(path);
    if (m) {
      try {
        return ["post", decodeURIComponent(m[1])];
      } catch (_) {
        return ["post", m[1]];
      }
    }
    return null;
  }

  function show() {
    const [view, id] = route(location.pathname) || ["chat", null];
    const before = app.dataset.view;
    app.dataset.view = view;
    for (const [name, section] of Object.entries(views)) section.hidden = name !== view;
    for (const [name, tab] of Object.entries(tabs)) {
      if (name === view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    if (before === "feed" && view !== "feed") window.ColossusFeed.hide();
    if (before === "post" && view !== "post") window.ColossusPost.hide();
    if (view === "feed") {
      document.title = "Feed · Colossus";
      window.ColossusFeed.show();
    } else if (view === "post") {
      window.ColossusPost.show(id);
    } else {
      document.title = `${$("conversation-title").textContent} · Colossus`;
    }
  }

  function go(href) {
    if (href !== location.pathname + location.search) history.pushState(null, "", href);
    show();
    window.scrollTo(0, 0);
  }

  document.addEventListener("click", (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest("a[href]");
    if (!a || a.target || a.origin !== location.origin || !route(a.pathname)) return;
    e.preventDefault();
    $("sidebar").classList.remove("open");
    go(a.pathname + a.search);
  });
  // Opening a conversation, or a new one, from the sidebar shows the chat.
  for (const target of [$("conversation-list"), $("new-chat")]) {
    target.addEventListener("click", (e) => {
      if (e.target.closest("button") && app.dataset.view !== "chat") go("/");
    });
  }
  for (const b of document.querySelectorAll(".sidebar-toggle")) {
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      $("toggle-sidebar").click(); // the chat's own toggle: it opens the drawer and keeps its state
    });
  }
  window.addEventListener("popstate", show);
  show();
})();
