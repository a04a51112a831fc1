"""Pieces of the drivers (``musicstore.runner``, ``musicstore.store``, ``musicstore.aio``) that stand apart
from their step loops: ``drivers.methods`` (the operations as methods of a driver), ``drivers.opening`` (what
opening a store checks). The drivers import them and re-export what was public there."""
