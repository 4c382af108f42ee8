"""Text hygiene: everything open-swe does to text it did not write, in one place, in linear time.

- `invisible`: characters nobody can see (zero-width, bidi, tags), and the size bound.
- `html`: a linear HTML tokenizer and the reader's view of rendered markup (what is visible).
- `markdown`: GitHub's CommonMark parser (cmark-gfm), rendered and read as a person reads it.
- `sanitize`: text for the model (what a reader sees, as markdown) and its `<untrusted>` fence.
- `github`: text we post on GitHub: inert quoting, code spans, defused mentions and closing
  keywords.
- `redact`: the one redaction policy (known values in every spelling, token shapes, URL
  credentials) for logs, model input, sandbox output and GitHub text.
"""
