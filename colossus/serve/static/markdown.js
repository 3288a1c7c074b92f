/* A small markdown renderer for chat messages that cannot inject HTML.
 *
 * Model text is untrusted, so every piece of source text goes through escapeHtml() before any markup is
 * added, and the only tags this file ever emits are its own: p, br, strong, em, code, pre, ul, ol, li,
 * h3-h6, a (http and https URLs only, rel="noopener noreferrer"; a citation's link also to a path of this
 * server) and the code block's copy button. No attribute is ever built from unescaped text. It handles what
 * chat replies use: paragraphs, line breaks, **bold**, *italic*, `inline code`, fenced code blocks (also an
 * unclosed fence while a reply is still streaming), lists, headings, links and citations. Anything else is
 * shown as the text it is.
 *
 *     ColossusMarkdown.render("**hi** <b>")  // -> '<p><strong>hi</strong> &lt;b&gt;</p>'
 *     ColossusMarkdown.render("At Ostra [1].", [{start: 9, end: 12, href: "/posts/p1", title: "@a: ..."}])
 *         // -> '<p>At Ostra <a class="cite" href="/posts/p1" title="@a: ...">[1]</a>.</p>'
 *
 * Citations are spans of the source (the API's url_citation offsets, in code points as Python counts them),
 * each an [n] marker. Each becomes a placeholder of private-use characters before the markdown is read, so
 * that nothing else can match across it, and its link after the text around it is escaped.
 */
(function (global) {
  "use strict";

  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  }

  // Bold and italic on text that is already escaped: it holds no tags, so wrapping parts of it is safe.
  // Italic never spans a tag, so the output stays well nested.
  function emphasis(escaped) {
    return escaped
      .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
      .replace(/(^|[^*\w])\*(?=[^\s*])([^*<]*?[^\s*<])\*(?![*\w])/g, "$1<em>$2</em>")
      .replace(/(^|[^\w])_(?=[^\s_])([^_<]*?[^\s_<])_(?!\w)/g, "$1<em>$2</em>");
  }

  const CITE = /\uE000(\d+)\uE001/g; // a citation's placeholder: its index between two private-use characters
  const PRIVATE = /[\uE000\uE001]/g;
  const CITE_MARKER = /^\[\d{1,3}\]$/;
  const LOCAL_PATH = /^\/(?![/\\])[^\s\\]*$/; // "/posts/1", never "//host" or "/\\host" (which mean another host)
  const HTTP_URL = /^https?:\/\/[^\s]+$/i;

  /* The source with each citation replaced by its placeholder, and the citations kept. Offsets in code points are
   * turned into the string's UTF-16 indices; a citation that does not cover an [n] marker, overlaps another or
   * has no safe link stays text. Private-use characters of the source itself become U+FFFD. */
  function placeCites(source, cites) {
    const links = [];
    if (!Array.isArray(cites) || !cites.length) return [source.replace(PRIVATE, "\uFFFD"), links];
    const units = [0]; // code point -> UTF-16 index
    for (const ch of source) units.push(units[units.length - 1] + ch.length);
    let text = "";
    let last = 0;
    for (const c of cites.slice().sort((a, b) => a.start - b.start)) {
      if (!Number.isInteger(c.start) || !Number.isInteger(c.end) || c.start < 0 || c.end >= units.length) continue;
      const start = units[c.start];
      const end = units[c.end];
      const label = source.slice(start, end);
      const href = String(c.href || "");
      if (start < last || !CITE_MARKER.test(label) || !(LOCAL_PATH.test(href) || HTTP_URL.test(href))) continue;
      text += source.slice(last, start).replace(PRIVATE, "\uFFFD") + `\uE000${links.length}\uE001`;
      links.push({ label, href, title: String(c.title || "") });
      last = end;
    }
    return [text + source.slice(last).replace(PRIVATE, "\uFFFD"), links];
  }

  function citeLink(c) {
    const away = LOCAL_PATH.test(c.href) ? "" : ' target="_blank" rel="noopener noreferrer"';
    const title = c.title ? ` title="${escapeHtml(c.title)}"` : "";
    return `<a class="cite" href="${escapeHtml(c.href)}"${title}${away}>${escapeHtml(c.label)}</a>`;
  }

  // In code a citation is the marker it was, as text.
  const unplace = (raw, links) => raw.replace(CITE, (_, i) => links[i].label);

  // The placeholders hold no * or _ and no tag, so emphasis may wrap them; each then becomes its link.
  function plain(raw, links) {
    return emphasis(escapeHtml(raw)).replace(/\n/g, "<br>").replace(CITE, (_, i) => citeLink(links[i]));
  }

  function link(url, labelHtml) {
    return `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${labelHtml}</a>`;
  }

  // Code spans, [label](http(s) URL) and bare http(s) URLs, found in the raw text; the text between
  // them gets bold/italic. A link to any other scheme (javascript:, data:) does not match and stays text.
  const INLINE = new RegExp(
    [
      "(`+)([\\s\\S]*?[^`])\\1(?!`)", // 1, 2: code span
      "\\[([^\\]\\n\uE000]+)\\]\\((https?:\\/\\/[^\\s()<>\"'`\uE000]+)\\)", // 3, 4: [label](url)
      "(https?:\\/\\/[^\\s<>()\"'`\uE000]*[^\\s<>()\"'`.,;:!?*_\uE000])", // 5: bare URL, trailing punctuation left out
    ].join("|"),
    "gi",
  );

  function inline(raw, links) {
    let html = "";
    let last = 0;
    INLINE.lastIndex = 0;
    for (let m = INLINE.exec(raw); m !== null; m = INLINE.exec(raw)) {
      html += plain(raw.slice(last, m.index), links);
      if (m[2] !== undefined) {
        html += `<code>${escapeHtml(unplace(m[2], links).replace(/\n/g, " "))}</code>`;
      } else if (m[4] !== undefined) {
        html += link(m[4], plain(m[3], links));
      } else {
        html += link(m[5], escapeHtml(m[5]));
      }
      last = m.index + m[0].length;
    }
    return html + plain(raw.slice(last), links);
  }

  function codeBlock(lang, code) {
    const label = lang ? `<span class="code-lang">${escapeHtml(lang)}</span>` : "<span></span>";
    return (
      `<div class="code-block"><div class="code-head">${label}` +
      '<button type="button" class="copy-code" aria-label="Copy code">Copy</button></div>' +
      `<pre><code>${escapeHtml(code)}</code></pre></div>`
    );
  }

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
  const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
  const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;

  function render(source, cites) {
    const [placed, links] = placeCites(String(source), cites);
    const lines = placed.replace(/\r\n?/g, "\n").split("\n");
    const out = [];
    let para = []; // raw lines of the open paragraph
    let list = null; // {tag, items: [raw text], start}

    const closePara = () => {
      if (para.length) out.push(`<p>${inline(para.join("\n"), links)}</p>`);
      para = [];
    };
    const closeList = () => {
      if (!list) return;
      const start = list.tag === "ol" && list.start !== 1 ? ` start="${list.start}"` : "";
      out.push(`<${list.tag}${start}>${list.items.map((t) => `<li>${inline(t, links)}</li>`).join("")}</${list.tag}>`);
      list = null;
    };
    const addItem = (tag, text, start) => {
      closePara();
      if (!list || list.tag !== tag) {
        closeList();
        list = { tag, items: [], start };
      }
      list.items.push(text);
    };

    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = FENCE.exec(line);
      if (fence) {
        closePara();
        closeList();
        const marker = fence[1];
        const body = [];
        i++;
        // Until the closing fence, or the end of the text (a reply still streaming in).
        while (i < lines.length && !(lines[i].trim().startsWith(marker) && /^[`~]+$/.test(lines[i].trim()))) {
          body.push(lines[i]);
          i++;
        }
        out.push(codeBlock(fence[2], unplace(body.join("\n"), links)));
        continue;
      }
      if (!line.trim()) {
        closePara();
        closeList();
        continue;
      }
      const heading = HEADING.exec(line);
      const bullet = BULLET.exec(line);
      const numbered = NUMBERED.exec(line);
      if (heading) {
        closePara();
        closeList();
        const level = Math.min(6, heading[1].length + 2);
        out.push(`<h${level}>${inline(heading[2], links)}</h${level}>`);
      } else if (bullet) {
        addItem("ul", bullet[1]);
      } else if (numbered) {
        addItem("ol", numbered[2], parseInt(numbered[1], 10));
      } else if (list && /^\s/.test(line)) {
        list.items[list.items.length - 1] += "\n" + line.trim(); // an item's continuation line
      } else {
        closeList();
        para.push(line);
      }
    }
    closePara();
    closeList();
    return out.join("");
  }

  global.ColossusMarkdown = { render, escapeHtml };
})(typeof window !== "undefined" ? window : globalThis);
