"""The web layer: a dashboard where people who supervise open-swe watch and steer its runs.

- layer.py: the routes create_app mounts, and the parts built when the app starts
- auth.py, sessions.py, oauth.py, secret_file.py: signing in with GitHub, sealed cookies
- access.py: who sees what (the person's own GitHub access, cached briefly)
- dashboard.py, run_view.py, records.py: what the pages and the API show
- pages.py, api.py, actions.py, csrf.py: the pages, the JSON API, the four actions
- stream.py: a run's transcript as it is stored, as server-sent events
- metrics.py: /metrics for Prometheus
- render.py, templates/, static/: server-rendered HTML and one small script
"""
