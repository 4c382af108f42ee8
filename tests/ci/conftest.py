"""The GitHub layer's fixtures (a fake GitHub, an installation client), for reading CI."""

from tests.github.conftest import client, gh, github_app

__all__ = ["client", "gh", "github_app"]
