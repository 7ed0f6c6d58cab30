"""The scanner behind ``consent scan URL``: a real browser through each consent decision, and a
report of what it stored, checked against the site's policy and the known-cookie catalog.

Playwright (the ``[scan]`` extra) is imported only when a scan starts.
"""
