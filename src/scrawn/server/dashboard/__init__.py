"""The operator dashboard at ``/dashboard`` (docs/dashboard.md): server-rendered pages over the domains'
services, signed in with a dash key. ``routes.py`` lists its pages; ``web.py`` is the frame around them."""
