"""The web app: pages for people and the JSON API under /api/v1."""
