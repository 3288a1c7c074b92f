/* How the web app talks to the server: JSON calls with the API key (kept in localStorage once the
 * server has answered 401 and the user typed it), one streamed completion: POST /v1/chat/completions
 * with stream=true read as server-sent events through fetch + ReadableStream, and the feed's live
 * stream (readEvents: any GET of server-sent events, with the key, which EventSource cannot send).
 * Aborting the fetch (Stop) closes the connection, and the server then aborts the request.
 *
 *     const r = await ColossusAPI.streamCompletion(body, signal, (text) => show(text), (step) => showStep(step));
 *     const end = await ColossusAPI.readEvents("/v1/posts/stream?after=7", signal, onOpen, (e) => use(e.id, e.data));
 */
(function (global) {
  "use strict";

  const KEY_STORAGE = "colossus.apiKey";

  const apiKey = {
    get: () => localStorage.getItem(KEY_STORAGE) || "",
    set: (key) => (key ? localStorage.setItem(KEY_STORAGE, key) : localStorage.removeItem(KEY_STORAGE)),
  };

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function headers(extra) {
    const h = Object.assign({}, extra);
    const key = apiKey.get();
    if (key) h.Authorization = `Bearer ${key}`;
    return h;
  }

  async function errorOf(res) {
    let message = `${res.status} ${res.statusText}`.trim();
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) message = body.error.message;
      else if (body && typeof body.detail === "string") message = body.detail;
    } catch (_) {
      /* not JSON: keep the status line */
    }
    if (res.status === 401) ColossusAPI.onUnauthorized();
    return new HttpError(res.status, message);
  }

  async function api(method, path, body) {
    const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new Error(`the server cannot be reached (${e.message})`);
    }
    if (!res.ok) throw await errorOf(res);
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }

  /* Reads the SSE stream of one completion. onText(fullText) is called at every new piece of text, onStep(step)
   * at each tool call the server reports (delta.tool_steps: what was searched or calculated, the posts found).
   * Resolves (never rejects) with what arrived: text, tool steps, annotations (url_citation, offsets in the
   * text) and citations (permalinks), usage, finish reason, stopped, error and timings. */
  async function streamCompletion(body, signal, onText, onStep = () => {}) {
    const r = { text: "", toolSteps: [], annotations: [], citations: null, usage: null, finishReason: null,
      stopped: false, error: null, chunks: 0, t0: performance.now(), tFirst: null, tLast: null };
    const handle = (event) => {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (!data || data === "[DONE]") return;
      let msg;
      try {
        msg = JSON.parse(data);
      } catch (_) {
        return;
      }
      if (msg.error) {
        r.error = msg.error.message || String(msg.error);
        return;
      }
      if (msg.usage) r.usage = msg.usage;
      if (Array.isArray(msg.citations)) r.citations = msg.citations;
      const choice = (msg.choices || [])[0];
      if (!choice) return;
      const delta = choice.delta || {};
      for (const step of Array.isArray(delta.tool_steps) ? delta.tool_steps : []) {
        r.toolSteps.push(step);
        onStep(step);
      }
      if (Array.isArray(delta.annotations)) r.annotations = delta.annotations;
      const piece = delta.content;
      if (piece) {
        const now = performance.now();
        if (r.tFirst === null) r.tFirst = now;
        r.tLast = now;
        r.chunks += 1;
        r.text += piece;
        onText(r.text);
      }
      if (choice.finish_reason) r.finishReason = choice.finish_reason;
    };
    try {
      const res = await fetch("/v1/chat/completions", {
        method: "POST", signal, body: JSON.stringify(body),
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      });
      if (!res.ok) {
        r.error = (await errorOf(res)).message;
        return r;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        for (let m = /\r?\n\r?\n/.exec(buffer); m; m = /\r?\n\r?\n/.exec(buffer)) {
          handle(buffer.slice(0, m.index));
          buffer = buffer.slice(m.index + m[0].length);
        }
      }
      if (buffer.trim()) handle(buffer);
    } catch (e) {
      if (e.name === "AbortError") r.stopped = true;
      else r.error = `the stream broke off (${e.message})`;
    }
    return r;
  }

  /* Reads server-sent events from GET path until the stream ends, breaks or signal aborts it. onOpen() is
   * called once the server has answered 200, onEvent({id, data}) for each event (comments are skipped).
   * Resolves (never rejects) with {status, error, retryMs (the stream's retry field), retryAfter (seconds, on
   * an error answer), aborted}. */
  async function readEvents(path, signal, onOpen, onEvent) {
    const r = { status: 0, error: null, retryMs: null, retryAfter: null, aborted: false };
    const handle = (block) => {
      const data = [];
      let id = null;
      for (const line of block.split(/\r?\n/)) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") data.push(value);
        else if (field === "id") id = value;
        else if (field === "retry" && /^\d+$/.test(value)) r.retryMs = Number(value);
      }
      if (data.length) onEvent({ id, data: data.join("\n") });
    };
    try {
      const res = await fetch(path, { signal, headers: headers({ Accept: "text/event-stream" }) });
      r.status = res.status;
      if (!res.ok) {
        const after = Number(res.headers.get("Retry-After"));
        if (Number.isFinite(after) && after > 0) r.retryAfter = after;
        r.error = (await errorOf(res)).message;
        return r;
      }
      onOpen();
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        for (let m = /\r?\n\r?\n/.exec(buffer); m; m = /\r?\n\r?\n/.exec(buffer)) {
          handle(buffer.slice(0, m.index));
          buffer = buffer.slice(m.index + m[0].length);
        }
      }
      r.error = "the server ended the stream";
    } catch (e) {
      if (e.name === "AbortError") r.aborted = true;
      else r.error = `the stream broke off (${e.message})`;
    }
    return r;
  }

  /* Speed of a reply: tokens after the first over the time from the first to the last piece (decode
   * speed), and the time to the first piece. Tokens come from the stream's usage, or are the number of
   * pieces when the reply was stopped before the usage arrived. */
  function replyMeta(r, model) {
    const meta = { finish_reason: r.stopped ? "stopped" : r.finishReason };
    if (r.stopped) meta.stopped = true;
    const tokens = r.usage && typeof r.usage.completion_tokens === "number" ? r.usage.completion_tokens : r.chunks;
    meta.completion_tokens = tokens;
    if (!r.usage) meta.tokens_counted_from_chunks = true;
    if (r.tFirst !== null) {
      meta.time_to_first_token = round((r.tFirst - r.t0) / 1000, 3);
      const seconds = (r.tLast - r.tFirst) / 1000;
      if (tokens > 1 && seconds > 0) meta.tokens_per_second = round((tokens - 1) / seconds, 1);
    }
    if (model) meta.model = model;
    return meta;
  }

  const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits;

  const ColossusAPI = { api, streamCompletion, readEvents, replyMeta, HttpError, apiKey, onUnauthorized: () => {} };
  global.ColossusAPI = ColossusAPI;
})(window);
