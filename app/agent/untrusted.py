"""Hygiene for text people wrote (issue bodies, comments, task files) before a model sees it.

Hidden text is the classic prompt-injection channel: it is invisible to the humans reviewing
an issue but plain to the model. We remove what GitHub does not render (HTML comments,
markdown comment link definitions, alt/title text of images, elements marked `hidden`) and
characters nobody can see (zero-width, bidi controls, Unicode tag characters, variation
selectors), then fence what is left in an `<untrusted>` block the system prompt explains.
Visible markup (`<details>`, code blocks, links) is kept: people can see it, so it is fair.
"""

from __future__ import annotations

import re
import unicodedata

# Invisible or direction-changing code points: zero-width and joiners, bidi embeddings,
# overrides and isolates, word joiner and invisible operators, BOM, soft hyphen, Mongolian
# vowel separator, Hangul fillers, variation selectors, and the Unicode "tag" block used to
# smuggle ASCII.
_INVISIBLE = re.compile(
    "["
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef"
    "]"
)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# `[//]: # (text)`, `[comment]: <> (text)`: link definitions never rendered by markdown.
_MARKDOWN_COMMENT = re.compile(
    r"^[ \t]{0,3}\[[^\]\n]*\]:[ \t]*(?:#|<>)[^\n]*(?:\n|\Z)", re.MULTILINE
)
_HIDDEN_ELEMENT = re.compile(
    r"<(?P<tag>[a-z][a-z0-9]*)\b[^>]*\shidden\b[^>]*>.*?</(?P=tag)\s*>", re.DOTALL | re.IGNORECASE
)
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_IMG_SRC = re.compile(r"\ssrc\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE)
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+[\"'(][^)]*)?\)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUNS = re.compile(r"\n{3,}")

UNTRUSTED_TAG = "untrusted"


def sanitize(text: str) -> str:
    """Text as a person sees it rendered on GitHub, minus invisible characters."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub("", text)
    text = _HTML_COMMENT.sub("", text)
    text = _MARKDOWN_COMMENT.sub("", text)
    text = _HIDDEN_ELEMENT.sub("", text)
    text = _IMG_TAG.sub(_describe_img_tag, text)
    text = _MARKDOWN_IMAGE.sub(lambda m: f"![image]({m.group(1)})", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _describe_img_tag(match: re.Match[str]) -> str:
    src = _IMG_SRC.search(match.group(0))
    return f"![image]({src.group(1)})" if src else "[image]"


def fence(source: str, text: str) -> str:
    """Wrap sanitised text in a delimited block the model is told to treat as data.

    Any tag that could close (or reopen) the fence early is defused, so the text cannot
    pretend to end the untrusted block and speak with the prompt's authority.
    """
    body = re.sub(rf"<(/?)\s*{UNTRUSTED_TAG}", r"<\1_" + UNTRUSTED_TAG, sanitize(text), flags=re.I)
    label = re.sub(r"[^\w .#@/-]", "", source)[:80]
    return f'<{UNTRUSTED_TAG} source="{label}">\n{body}\n</{UNTRUSTED_TAG}>'
