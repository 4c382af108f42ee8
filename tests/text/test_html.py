"""The reader's view of HTML: what `walk` reports is what a person can see."""

from __future__ import annotations

import pytest

from app.text.html import Start, attributes, unescape, walk


class Record:
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, token: Start) -> None:
        self.events.append(f"<{token.name}>")

    def end(self, name: str) -> None:
        self.events.append(f"</{name}>")

    def text(self, data: str) -> None:
        self.events.append(data)


def seen(markup: str) -> str:
    record = Record()
    walk(markup, record)
    return "".join(record.events)


@pytest.mark.parametrize(
    ("markup", "visible"),
    [
        ("a<!-- b -->c", "ac"),
        ("a<!-->b", "ab"),  # an empty comment
        ("a<!-- never closed", "a"),
        ("a<!DOCTYPE html>b<?php x ?>c</ x>d", "abcd"),  # bogus comments
        ("a<script>x</p>'</script>b", "ab"),
        ("a<style>p{}", "a"),  # raw text to the end
        ('<a title="x>y">t</a>', "<a>t</a>"),  # ">" inside a quoted value
        ('a<b title="never closed>c', "a"),  # cut off: swallows the rest
        ("a<b", "a"),
        ("a < b &lt; c", "a < b < c"),
        ("x</div>y", "xy"),  # a stray end tag
        ("<p>a<br>b</p>", "<p>a<br></br>b</p>"),  # void
        ("<div><span>a</div>b", "<div><span>a</span></div>b"),  # closes what it contains
        ("a<div hidden><div>b</div>c</div>d", "ad"),
        ("a<p hidden>b<p>c</p>d", "a"),  # left open: hidden to the end
        ("a<i aria-hidden=TRUE>b</i>c", "ac"),
        ("a<i style='Display : None'>b</i>c", "ac"),
        ("a<i style='color: red'>b</i>c", "a<i>b</i>c"),
        ("a<template><b>x</b></template>c", "ac"),
        ("&#64;&amp;lt;&unknown;", "@&lt;&unknown;"),
    ],
)
def test_only_what_a_reader_sees_is_reported(markup: str, visible: str) -> None:
    assert seen(markup) == visible


def test_attributes_are_decoded_and_the_first_of_a_name_wins() -> None:
    assert attributes("Hidden SRC=\"a&amp;b\" src=x data-x='1 2'") == {
        "hidden": "",
        "src": "a&b",
        "data-x": "1 2",
    }


def test_unescape_decodes_what_cmark_writes_and_everything_else() -> None:
    assert unescape("&lt;a&gt; &quot;&amp;lt;") == '<a> "&lt;'
    assert unescape("&#x40;&commat;") == "@@"
