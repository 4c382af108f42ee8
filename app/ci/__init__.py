"""CI autofix: what failed on a pull request's commit, whether open-swe should try to fix it,
and what it tells people. The webhook side lives in app.webhooks.checks."""
