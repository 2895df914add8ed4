"""Runnable demos (``python -m scripts.demo``); a package so the import contracts cover them."""
