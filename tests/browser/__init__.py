"""Browser tests: the admin jobs dashboard driven in headless Chromium against a real gunicorn."""
