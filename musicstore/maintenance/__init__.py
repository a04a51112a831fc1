"""Keeping rows and files consistent for years: reconcile, retention, disk usage, backup, transfer."""
