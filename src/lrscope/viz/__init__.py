"""Pictures of results: matplotlib plots (``ax=`` convention) and the HTML report.

Everything here reads result objects only, never a model; matplotlib is imported on first use.
"""
