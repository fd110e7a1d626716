"""Framework-free engine: ramps, smoothing, stopping, rules, the range test and its result.

Nothing in this package imports a deep-learning framework or a plotting library.
"""
