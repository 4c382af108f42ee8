"""The GitHub layer: the only package importing PyGithub and PyJWT.

- `app.github.app.GitHubApp`: App JWT, installation lookups, cached repo-scoped tokens.
- `app.github.client.InstallationClient`: repository operations, returning `types` values.
- `app.github.manifest`: registering the App from manifest.yml and storing its credentials.
- `app.github.errors`: `GitHubError` and its kinds (NotFound, Forbidden, RateLimited, ...).
"""
