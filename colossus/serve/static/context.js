/* What of a conversation fits the model's context, by the terminal chat's rule (colossus/terminal_chat.py, fit):
 * room is kept for the reply (its max_tokens, or DEFAULT_REPLY_TOKENS when the conversation sets none; at most
 * half the context), then the oldest whole turns (a user message and the replies after it) are left out until the
 * prompt fits. The system message and the newest turn are always kept. count(messages) gives a prompt's tokens
 * (the chat asks the server's POST /tokenize, so the count is the chat template's own); a binary search over the
 * turns asks it about log2(turns) times, and once when the whole conversation fits.
 *
 *     const fit = await ColossusContext.fit(messages, { context: 2048, maxTokens: 16, count });
 *     fit.messages, fit.dropped (messages left out), fit.promptTokens (the kept prompt's), fit.reserved
 */
(function (global) {
  "use strict";

  const DEFAULT_REPLY_TOKENS = 256; // as the terminal chat's replies

  /* The tokens kept free for the reply. */
  function reserved(context, maxTokens) {
    const wanted = Number.isInteger(maxTokens) && maxTokens > 0 ? maxTokens : DEFAULT_REPLY_TOKENS;
    return Math.max(1, Math.min(wanted, Math.floor(context / 2)));
  }

  /* Where each turn that may be left out starts: the first message after the system one, then each user message
   * after it. Keeping the messages from starts[k] on leaves out the first k turns. */
  function turnStarts(messages, first) {
    const starts = [];
    for (let i = first; i < messages.length; i++) if (i === first || messages[i].role === "user") starts.push(i);
    return starts;
  }

  async function fit(messages, { context, maxTokens, count }) {
    const first = messages.length && messages[0].role === "system" ? 1 : 0;
    const starts = turnStarts(messages, first);
    const room = reserved(context, maxTokens);
    if (!starts.length) return { messages, dropped: 0, promptTokens: await count(messages), reserved: room };
    const kept = (k) => messages.slice(0, first).concat(messages.slice(starts[k]));
    const tokens = new Map(); // k -> the prompt's tokens with the first k turns left out
    const fits = async (k) => {
      if (!tokens.has(k)) tokens.set(k, await count(kept(k)));
      return tokens.get(k) + room <= context;
    };
    let k = 0;
    if (!(await fits(0))) {
      k = starts.length - 1; // the newest turn alone, even when it does not fit: the server's answer says so
      if (k > 0 && (await fits(k))) {
        let lo = 1; // fits(k) holds, fits(lo - 1) does not
        while (lo < k) {
          const mid = (lo + k) >> 1;
          if (await fits(mid)) k = mid;
          else lo = mid + 1;
        }
      }
    }
    return { messages: kept(k), dropped: starts[k] - first, promptTokens: tokens.get(k), reserved: room };
  }

  global.ColossusContext = { fit, reserved, DEFAULT_REPLY_TOKENS };
})(window);
