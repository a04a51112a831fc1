-- Back to 0005 (or 0006): no renditions table; the rendition files stay on disk as orphans for reconcile.

DROP TABLE renditions;
