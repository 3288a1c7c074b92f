/* The web chat page. Conversations live on the server (/v1/conversations, SQLite); a reply is streamed
 * by api.js and Stop aborts that fetch, which makes the server abort the request. Sending appends the
 * user message to the conversation, streams the reply, then appends the reply with its speed (also a
 * stopped one: what arrived is kept). What the reply looked up (its tool steps) and the posts it cites are kept
 * in that message's meta too, and shown around its text by sources.js; the conversation's search mode (auto,
 * on, off) is sent as search_parameters. A conversation longer than the model's context loses its oldest turns
 * from the request (context.js, counted with POST /tokenize), and the reply says so in a note kept in its meta.
 *
 * Model and user text never become HTML: user text is set with textContent, replies go through
 * ColossusMarkdown.render (markdown.js), which escapes every piece of text before adding its own tags.
 * No dependencies, no build step. */
(function () {
  "use strict";

  const { api, streamCompletion, replyMeta, HttpError, apiKey } = window.ColossusAPI;
  const Sources = window.ColossusSources;
  const Context = window.ColossusContext;
  // Conversation settings that are sampling parameters of /v1/chat/completions, sent as they are.
  const SAMPLING_SETTINGS = ["temperature", "max_tokens", "top_p", "top_k", "min_p", "seed", "ignore_eos",
    "presence_penalty", "frequency_penalty", "repetition_penalty", "stop"];
  const DEFAULT_TEMPERATURE = 0.7;
  const SEARCH_MODES = ["auto", "on", "off"]; // search_parameters.mode; the server's default is auto

  const $ = (id) => document.getElementById(id);
  const el = {
    app: $("app"), sidebar: $("sidebar"), list: $("conversation-list"), newChat: $("new-chat"),
    toggleSidebar: $("toggle-sidebar"), title: $("conversation-title"), renameForm: $("rename-form"),
    renameInput: $("rename-input"), renameCancel: $("rename-cancel"), rename: $("rename-chat"),
    exportChat: $("export-chat"), deleteChat: $("delete-chat"), toggleSettings: $("toggle-settings"),
    settings: $("settings"), system: $("system-prompt"), temperature: $("temperature"),
    temperatureValue: $("temperature-value"), maxTokens: $("max-tokens"), searchMode: $("search-mode"),
    forgetKey: $("forget-key"),
    auth: $("auth"), authForm: $("auth-form"), apiKey: $("api-key"), messages: $("messages"),
    composer: $("composer"), prompt: $("prompt"), send: $("send"), stop: $("stop"), status: $("status"),
  };

  const state = {
    conversations: [], // summaries, newest first
    conv: null, // the open conversation: {id (null until its first message), title, system, settings, messages}
    model: null,
    context: null, // the model's context length in tokens (max_model_len of GET /v1/models)
    controller: null, // AbortController of the reply being streamed
    busy: false,
  };

  // ---- conversations on the server ---------------------------------------------------------------

  const convPath = (id, rest = "") => `/v1/conversations/${encodeURIComponent(id)}${rest}`;

  function normalize(c) {
    return {
      id: c.id, title: c.title || "", system: c.system || "", settings: Object.assign({}, c.settings),
      updated: c.updated, messages: (c.messages || []).map((m) => ({
        id: m.id, role: m.role, content: m.content || "", meta: m.meta || {}, created: m.created,
      })),
    };
  }

  function requestBody(conv) {
    const messages = conv.system ? [{ role: "system", content: conv.system }] : [];
    for (const m of conv.messages) {
      if (m.role === "assistant" && !m.content) continue;
      messages.push({ role: m.role, content: m.content });
    }
    // The slider shows a temperature even when the conversation has none stored: send what it shows.
    const body = { messages, stream: true, stream_options: { include_usage: true },
      temperature: DEFAULT_TEMPERATURE };
    if (state.model) body.model = state.model;
    for (const k of SAMPLING_SETTINGS) {
      const v = conv.settings[k];
      if (v !== undefined && v !== null && v !== "") body[k] = v;
    }
    const search = conv.settings.search_parameters;
    if (search && typeof search === "object") body.search_parameters = search;
    return body;
  }

  /* The request body cut to the model's context: its oldest turns left out until the prompt leaves room for the
   * reply (context.js), and a max_tokens lowered to the room there is. Returns the body and how many messages were
   * left out; unchanged when the context is unknown or the server cannot count (no POST /tokenize): a prompt too
   * long then gets the server's 400, which says so. */
  async function fitToContext(body) {
    try {
      if (!state.context) await loadModelCard();
      const context = state.context;
      if (!context) return { body, dropped: 0 };
      const count = async (messages) => {
        const r = await api("POST", "/tokenize", body.model ? { messages, model: body.model } : { messages });
        if (!r || !Number.isInteger(r.count)) throw new Error("POST /tokenize gave no count");
        return r.count;
      };
      const fit = await Context.fit(body.messages, { context, maxTokens: body.max_tokens, count });
      const fitted = Object.assign({}, body, { messages: fit.messages });
      const room = context - fit.promptTokens;
      if (Number.isInteger(body.max_tokens) && room >= 1) fitted.max_tokens = Math.min(body.max_tokens, room);
      return { body: fitted, dropped: fit.dropped };
    } catch (_) {
      return { body, dropped: 0 };
    }
  }

  // ---- views ----------------------------------------------------------------------------------------

  function button(label, aria, onClick, cls) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.setAttribute("aria-label", aria);
    if (cls) b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  }

  function setBody(body, role, content, meta) {
    // render escapes all text; the [n] markers the meta's annotations describe become links to their posts
    if (role === "assistant") body.innerHTML = window.ColossusMarkdown.render(content, Sources.cites(meta));
    else body.textContent = content;
  }

  function metaText(meta) {
    if (!meta) return "";
    const parts = [];
    if (typeof meta.completion_tokens === "number") {
      parts.push(`${meta.tokens_counted_from_chunks ? "≈" : ""}${meta.completion_tokens} tokens`);
    }
    if (typeof meta.tokens_per_second === "number") parts.push(`${meta.tokens_per_second.toFixed(1)} tok/s`);
    if (typeof meta.time_to_first_token === "number") {
      parts.push(`first token ${meta.time_to_first_token.toFixed(2)} s`);
    }
    if (meta.stopped) parts.push("stopped");
    else if (meta.finish_reason === "length") parts.push("cut at max tokens");
    return parts.join(" · ");
  }

  /* The note on a reply whose request left out the conversation's oldest messages (meta.dropped_messages). */
  function contextNote(meta) {
    const n = meta && meta.dropped_messages;
    if (!Number.isInteger(n) || n < 1) return null;
    const note = document.createElement("p");
    note.className = "context-note";
    note.setAttribute("role", "note");
    note.textContent = n === 1
      ? "The oldest message no longer fits in the model's context and was left out of this reply."
      : `The oldest ${n} messages no longer fit in the model's context and were left out of this reply.`;
    return note;
  }

  function messageView(m, index) {
    const view = document.createElement("article");
    view.className = `msg ${m.role}`;
    view.dataset.index = String(index);
    const role = document.createElement("div");
    role.className = "msg-role";
    role.textContent = { user: "You", assistant: "Assistant", system: "System" }[m.role] || m.role;
    const body = document.createElement("div");
    body.className = "msg-body";
    setBody(body, m.role, m.content, m.meta);
    const footer = document.createElement("div");
    footer.className = "msg-footer";
    const meta = document.createElement("span");
    meta.className = "msg-meta";
    meta.textContent = metaText(m.meta);
    const actions = document.createElement("div");
    actions.className = "msg-actions";
    const last = index === state.conv.messages.length - 1;
    if (m.role === "user") {
      actions.append(button("Edit", "Edit message", () => startEdit(index), "edit"));
      if (last) actions.append(button("Reply", "Generate a reply", () => regenerate(index + 1), "regenerate"));
    } else if (m.role === "assistant") {
      actions.append(button("Copy", "Copy reply", (e) => copyText(m.content, e.currentTarget), "copy"));
      if (last) actions.append(button("Regenerate", "Regenerate reply", () => regenerate(index), "regenerate"));
    }
    footer.append(meta, actions);
    view.append(role);
    const note = m.role === "assistant" ? contextNote(m.meta) : null;
    if (note) view.append(note);
    if (m.role === "assistant") view.append(Sources.steps(m.meta && m.meta.tool_steps));
    view.append(body);
    const cited = m.role === "assistant" ? Sources.cited(m.meta) : null;
    if (cited) view.append(cited);
    view.append(footer);
    return view;
  }

  function renderConversation() {
    const conv = state.conv;
    el.title.textContent = conv.title || "New conversation";
    if (chatShown()) document.title = `${conv.title || "New conversation"} · Colossus`;
    el.messages.replaceChildren(...conv.messages.map(messageView));
    if (!conv.messages.length) {
      const empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "Ask something. Enter sends, Shift+Enter adds a line, Esc stops a reply.";
      el.messages.append(empty);
    }
    el.system.value = conv.system;
    const t = conv.settings.temperature ?? DEFAULT_TEMPERATURE;
    el.temperature.value = String(t);
    el.temperatureValue.textContent = Number(t).toFixed(2);
    el.maxTokens.value = conv.settings.max_tokens ?? "";
    const mode = conv.settings.search_parameters && conv.settings.search_parameters.mode;
    el.searchMode.value = SEARCH_MODES.includes(mode) ? mode : "auto";
    for (const b of [el.rename, el.exportChat, el.deleteChat]) b.disabled = !conv.id;
    renderList();
    setBusy(state.busy);
    scrollToBottom(true);
  }

  function renderList() {
    el.list.replaceChildren(...state.conversations.map((c) => {
      const li = document.createElement("li");
      const title = c.title || "Untitled";
      const b = button(title, `Open conversation: ${title}`, () => openConversation(c.id));
      b.dataset.id = c.id;
      if (state.conv && c.id === state.conv.id) b.setAttribute("aria-current", "true");
      li.append(b);
      return li;
    }));
  }

  // views.js shows this view, the Feed or a post's page (#app[data-view]); the chat goes on while hidden.
  function chatShown() {
    return !el.app.dataset.view || el.app.dataset.view === "chat";
  }

  function setBusy(busy) {
    state.busy = busy;
    el.send.hidden = busy;
    el.stop.hidden = !busy;
    el.messages.setAttribute("aria-busy", String(busy));
    for (const b of el.messages.querySelectorAll(".msg-actions .edit, .msg-actions .regenerate")) b.disabled = busy;
  }

  function setStatus(text, isError) {
    el.status.textContent = text || "";
    el.status.classList.toggle("error", Boolean(isError));
  }

  function report(e) {
    setStatus(e instanceof HttpError && e.status === 401 ? "An API key is needed: enter it above." : e.message, true);
  }

  function nearBottom() {
    return el.messages.scrollHeight - el.messages.scrollTop - el.messages.clientHeight < 80;
  }

  function scrollToBottom(force) {
    if (force || nearBottom()) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function showAuth() {
    el.auth.hidden = false;
    el.apiKey.value = apiKey.get();
    el.apiKey.focus();
  }

  async function copyText(text, feedbackButton) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const area = document.createElement("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    if (feedbackButton) {
      const label = feedbackButton.textContent;
      feedbackButton.textContent = "Copied";
      setTimeout(() => { feedbackButton.textContent = label; }, 1500);
    }
  }

  // ---- conversations --------------------------------------------------------------------------------

  function draft() {
    return { id: null, title: "", system: "", settings: {}, messages: [] };
  }

  async function refreshList() {
    const list = await api("GET", "/v1/conversations");
    state.conversations = (list.data || []).slice()
      .sort((a, b) => (b.updated || b.created || 0) - (a.updated || a.created || 0));
    renderList();
  }

  async function openConversation(id) {
    stopReply();
    closeSidebar();
    try {
      state.conv = normalize(await api("GET", convPath(id)));
      renderConversation();
      setStatus("");
    } catch (e) {
      report(e);
    }
  }

  function newConversation() {
    stopReply();
    closeSidebar();
    state.conv = draft();
    renderConversation();
    setStatus("");
    el.prompt.focus();
  }

  function titleFrom(text) {
    const line = text.trim().split("\n")[0];
    return line.length > 60 ? `${line.slice(0, 57)}...` : line;
  }

  async function ensureCreated(conv, firstText) {
    if (conv.id) return;
    const created = await api("POST", "/v1/conversations",
      { title: conv.title || titleFrom(firstText), system: conv.system, settings: conv.settings });
    Object.assign(conv, { id: created.id, title: created.title || conv.title, updated: created.updated });
  }

  async function appendMessage(conv, message) {
    const saved = await api("POST", convPath(conv.id, "/messages"), message);
    if (saved && Array.isArray(saved.messages)) conv.messages = normalize(saved).messages;
    else conv.messages.push(Object.assign({ meta: {} }, message, saved && { id: saved.id, created: saved.created }));
  }

  async function replaceMessages(conv, messages) {
    // Ids and times are sent back so that the messages kept stay the same messages.
    const body = { messages: messages.map((m) => ({ id: m.id, role: m.role, content: m.content, meta: m.meta,
      created: m.created })) };
    const saved = await api("PATCH", convPath(conv.id), body);
    conv.messages = saved && Array.isArray(saved.messages) ? normalize(saved).messages : messages;
  }

  async function saveSettings() {
    const conv = state.conv;
    conv.system = el.system.value;
    const settings = Object.assign({}, conv.settings, { temperature: Number(el.temperature.value) });
    const max = parseInt(el.maxTokens.value, 10);
    if (Number.isFinite(max) && max > 0) settings.max_tokens = max;
    else delete settings.max_tokens;
    const search = settings.search_parameters && typeof settings.search_parameters === "object"
      ? settings.search_parameters : {};
    settings.search_parameters = Object.assign({}, search, { mode: el.searchMode.value }); // its other fields kept
    conv.settings = settings;
    if (!conv.id) return;
    try {
      await api("PATCH", convPath(conv.id), { system: conv.system, settings });
      setStatus("Settings saved.");
    } catch (e) {
      report(e);
    }
  }

  // ---- sending, stopping, regenerating, editing -----------------------------------------------------

  async function send(text) {
    if (state.busy || !text.trim()) return;
    const conv = state.conv;
    setBusy(true);
    setStatus("");
    el.prompt.value = "";
    autosize();
    try {
      await ensureCreated(conv, text);
      await appendMessage(conv, { role: "user", content: text });
      if (state.conv === conv) renderConversation();
      await reply(conv);
    } catch (e) {
      if (!conv.messages.length || conv.messages[conv.messages.length - 1].content !== text) el.prompt.value = text;
      report(e);
    } finally {
      setBusy(false);
      refreshList().catch(report);
    }
  }

  async function reply(conv) {
    if (state.conv !== conv) return; // the user opened another conversation meanwhile: "Reply" resumes it
    setBusy(true);
    const { body: request, dropped } = await fitToContext(requestBody(conv));
    if (state.conv !== conv) return;
    const left = dropped ? { dropped_messages: dropped } : {};
    const view = messageView({ role: "assistant", content: "", meta: left }, conv.messages.length);
    view.classList.add("streaming");
    view.querySelector(".msg-actions").replaceChildren();
    el.messages.querySelector(".empty")?.remove();
    el.messages.append(view);
    scrollToBottom(true);
    const body = view.querySelector(".msg-body");
    const steps = view.querySelector(".tool-steps");
    const controller = new AbortController();
    state.controller = controller;
    let pending = null; // the newest text not yet shown: rendered once per frame, not once per token
    const show = () => {
      if (pending === null) return;
      setBody(body, "assistant", pending);
      scrollToBottom(false);
      pending = null;
    };
    const r = await streamCompletion(request, controller.signal, (text) => {
      if (pending === null) requestAnimationFrame(show);
      pending = text;
    }, (step) => { // a search or a calculation, shown (folded) as soon as it ran, before the text
      Sources.add(steps, step);
      scrollToBottom(false);
    });
    show();
    if (state.controller === controller) state.controller = null;
    view.classList.remove("streaming");
    if (r.error && !r.text) {
      view.classList.add("error");
      body.textContent = `Error: ${r.error}`;
      setStatus(r.error, true);
      return;
    }
    if (!r.text) {
      view.remove();
      setStatus(r.stopped ? "Stopped before any text arrived." : "The model gave an empty reply.");
      return;
    }
    const meta = Object.assign(replyMeta(r, state.model), Sources.metaOf(r), left);
    await appendMessage(conv, { role: "assistant", content: r.text, meta });
    if (state.conv === conv) renderConversation();
    if (r.error) setStatus(r.error, true);
  }

  function stopReply() {
    if (state.controller) state.controller.abort();
  }

  async function regenerate(index) {
    const conv = state.conv;
    if (state.busy || !conv.id) return;
    setBusy(true);
    setStatus("");
    try {
      await replaceMessages(conv, conv.messages.slice(0, index));
      renderConversation();
      await reply(conv);
    } catch (e) {
      report(e);
    } finally {
      setBusy(false);
      refreshList().catch(report);
    }
  }

  function startEdit(index) {
    if (state.busy) return;
    const view = el.messages.querySelector(`.msg[data-index="${index}"]`);
    const message = state.conv.messages[index];
    const form = document.createElement("form");
    form.className = "msg-edit";
    const area = document.createElement("textarea");
    area.value = message.content;
    area.setAttribute("aria-label", "Edited message (Enter sends, Escape cancels)");
    const row = document.createElement("div");
    row.className = "row";
    const cancel = () => renderConversation();
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "primary";
    save.textContent = "Save & send";
    save.setAttribute("aria-label", "Save the edit and send it");
    row.append(button("Cancel", "Cancel editing", cancel), save);
    form.append(area, row);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      resend(index, area.value);
    });
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        cancel();
      }
    });
    view.querySelector(".msg-body").replaceWith(form);
    view.querySelector(".msg-footer").hidden = true;
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  /* Edit-and-resend: drop the edited message and everything after it, then send the new text. */
  async function resend(index, text) {
    const conv = state.conv;
    if (state.busy || !text.trim()) return;
    try {
      await replaceMessages(conv, conv.messages.slice(0, index));
      renderConversation();
    } catch (e) {
      report(e);
      return;
    }
    await send(text);
  }

  // ---- conversation actions -------------------------------------------------------------------------

  function startRename() {
    if (!state.conv.id) return;
    el.title.hidden = true;
    el.renameForm.hidden = false;
    el.renameInput.value = state.conv.title;
    el.renameInput.focus();
    el.renameInput.select();
  }

  function endRename() {
    el.renameForm.hidden = true;
    el.title.hidden = false;
    el.rename.focus();
  }

  async function saveRename() {
    const title = el.renameInput.value.trim();
    const conv = state.conv;
    if (title && conv.id) {
      try {
        await api("PATCH", convPath(conv.id), { title });
        conv.title = title;
        await refreshList();
        renderConversation();
      } catch (e) {
        report(e);
      }
    }
    endRename();
  }

  async function deleteConversation() {
    const conv = state.conv;
    if (!conv.id || !window.confirm(`Delete "${conv.title || "Untitled"}"? This cannot be undone.`)) return;
    stopReply();
    try {
      await api("DELETE", convPath(conv.id));
      await refreshList();
      if (state.conversations.length) await openConversation(state.conversations[0].id);
      else newConversation();
      setStatus("Conversation deleted.");
    } catch (e) {
      report(e);
    }
  }

  async function exportConversation() {
    const conv = state.conv;
    if (!conv.id) return;
    try {
      const data = await api("GET", convPath(conv.id, "/export"));
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${(conv.title || "conversation").replace(/[^\w.-]+/g, "_").slice(0, 60)}-${conv.id}.json`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    } catch (e) {
      report(e);
    }
  }

  function switchBy(step) {
    const ids = state.conversations.map((c) => c.id);
    if (!ids.length) return;
    const at = ids.indexOf(state.conv.id);
    const next = at < 0 ? (step > 0 ? 0 : ids.length - 1) : (at + step + ids.length) % ids.length;
    openConversation(ids[next]);
  }

  function openSidebar() {
    el.sidebar.classList.add("open");
    el.toggleSidebar.setAttribute("aria-expanded", "true");
    el.newChat.focus();
  }

  function closeSidebar() {
    if (!el.sidebar.classList.contains("open")) return false;
    el.sidebar.classList.remove("open");
    el.toggleSidebar.setAttribute("aria-expanded", "false");
    return true;
  }

  function autosize() {
    el.prompt.style.height = "auto";
    el.prompt.style.height = `${el.prompt.scrollHeight}px`;
  }

  // ---- start ----------------------------------------------------------------------------------------

  function bind() {
    el.composer.addEventListener("submit", (e) => {
      e.preventDefault();
      send(el.prompt.value);
    });
    el.prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send(el.prompt.value);
      }
    });
    el.prompt.addEventListener("input", autosize);
    el.stop.addEventListener("click", () => {
      stopReply();
      el.prompt.focus();
    });
    el.newChat.addEventListener("click", newConversation);
    el.toggleSidebar.addEventListener("click", (e) => {
      e.stopPropagation();
      if (closeSidebar()) el.toggleSidebar.focus();
      else openSidebar();
    });
    document.querySelector(".main").addEventListener("click", closeSidebar); // a tap beside the drawer closes it
    el.rename.addEventListener("click", startRename);
    el.renameForm.addEventListener("submit", (e) => {
      e.preventDefault();
      saveRename();
    });
    el.renameCancel.addEventListener("click", endRename);
    el.renameInput.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        endRename();
      }
    });
    el.deleteChat.addEventListener("click", deleteConversation);
    el.exportChat.addEventListener("click", exportConversation);
    el.toggleSettings.addEventListener("click", () => {
      el.settings.hidden = !el.settings.hidden;
      el.toggleSettings.setAttribute("aria-expanded", String(!el.settings.hidden));
      if (!el.settings.hidden) el.system.focus();
    });
    el.temperature.addEventListener("input", () => {
      el.temperatureValue.textContent = Number(el.temperature.value).toFixed(2);
    });
    for (const field of [el.system, el.temperature, el.maxTokens, el.searchMode]) {
      field.addEventListener("change", saveSettings);
    }
    el.authForm.addEventListener("submit", (e) => {
      e.preventDefault();
      apiKey.set(el.apiKey.value.trim());
      el.auth.hidden = true;
      load();
    });
    el.forgetKey.addEventListener("click", () => {
      apiKey.set("");
      setStatus("The API key was removed from this browser.");
    });
    el.messages.addEventListener("click", (e) => {
      const copy = e.target.closest(".copy-code");
      if (copy) copyText(copy.closest(".code-block").querySelector("code").textContent, copy);
    });
    document.addEventListener("keydown", (e) => {
      const mod = e.ctrlKey || e.metaKey;
      if (!chatShown()) {
        if (e.key === "Escape" && closeSidebar()) el.toggleSidebar.focus();
        return;
      }
      if (e.key === "Escape") {
        if (state.controller) {
          e.preventDefault();
          stopReply();
          el.prompt.focus();
        } else if (closeSidebar()) {
          el.toggleSidebar.focus();
        } else if (!el.settings.hidden) {
          el.settings.hidden = true;
          el.toggleSettings.setAttribute("aria-expanded", "false");
          el.toggleSettings.focus();
        }
      } else if (mod && !e.shiftKey && !e.altKey && e.key.toLowerCase() === "k") {
        e.preventDefault();
        newConversation();
      } else if (mod && e.key === "/") {
        e.preventDefault();
        el.prompt.focus();
      } else if (e.altKey && !mod && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
        e.preventDefault();
        switchBy(e.key === "ArrowUp" ? -1 : 1);
      }
    });
  }

  async function load() {
    try {
      await refreshList();
      if (state.conversations.length) await openConversation(state.conversations[0].id);
      else newConversation();
      el.prompt.focus();
      el.app.dataset.ready = "true"; // for tests and scripts: the list and a conversation are shown
    } catch (e) {
      report(e);
      return;
    }
    loadModel();
  }

  /* The model's name, sent with each request, and its context length. */
  async function loadModelCard() {
    const models = await api("GET", "/v1/models");
    const card = models && Array.isArray(models.data) && models.data.length ? models.data[0] : null;
    state.model = card ? card.id : null;
    const context = card && card.max_model_len;
    state.context = Number.isInteger(context) && context > 1 ? context : null;
  }

  /* loadModelCard at the start. The history is usable while the model still loads (503): the page says so and
   * asks again. */
  async function loadModel() {
    try {
      await loadModelCard();
      if (el.status.dataset.retrying) setStatus("");
      delete el.status.dataset.retrying;
    } catch (e) {
      report(e);
      if (e instanceof HttpError && e.status === 401) return;
      el.status.dataset.retrying = "true";
      setTimeout(loadModel, 2000);
    }
  }

  window.ColossusAPI.onUnauthorized = showAuth;
  state.conv = draft();
  bind();
  renderConversation();
  load();
})();
