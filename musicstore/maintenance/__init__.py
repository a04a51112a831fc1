"""Keeping rows and files consistent for years: reconcile, retention, disk usage, backup, transfer (rows
between databases), relocate (files between stores); over a local folder or an object store (``bucket``)."""
