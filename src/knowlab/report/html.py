"""A small Markdown-to-HTML converter for knowlab's own reports (headings, paragraphs, tables,
lists, images, code spans, raw <details> blocks), with images embedded as data URIs so the
HTML file is self-contained."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_IMG = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
td:first-child,th:first-child{text-align:left}code{background:#f3f3f3;padding:0 3px}img{max-width:100%}"""


def _inline(text: str, root: Path) -> str:
    if text.startswith("<") and text.endswith(">"):
        return text  # raw HTML line such as <details>
    parts = []
    last = 0
    for m in _IMG.finditer(text):
        parts.append(_text(text[last:m.start()]))
        path = root / m.group(2)
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}">')
        else:
            parts.append(f"[missing image {html.escape(m.group(2))}]")
        last = m.end()
    parts.append(_text(text[last:]))
    return "".join(parts)


def _text(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _CODE.sub(r"<code>\1</code>", out)
    return _BOLD.sub(r"<b>\1</b>", out)


def markdown_to_html(md: str, root: Path, title: str = "knowlab report") -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body>"]
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip(), root)}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append("<table><tr>" + "".join(f"<th>{_inline(c, root)}</th>" for c in rows[0]) + "</tr>")
            for row in rows[2:]:
                out.append("<tr>" + "".join(f"<td>{_inline(c, root)}</td>" for c in row) + "</tr>")
            out.append("</table>")
            continue
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:], root)}</li>")
                i += 1
            out.append("</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line.strip(), root)}</p>")
        i += 1
    out.append("</body></html>")
    return "\n".join(out)
