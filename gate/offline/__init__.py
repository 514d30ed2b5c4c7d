"""Offline work on labelled data: collect and cache signals, fit and evaluate artifacts, score files."""
