"""The suggestion-quality benchmark: range-test rules measured against grid search.

``tasks`` defines small deterministic training problems as lrscope Trainers, ``peers`` holds
re-implementations (from their documented behaviour) of other libraries' LR finders,
``harness`` runs the oracle grid, the range tests, every rule and the regret runs, and
``table`` writes the markdown. ``benchmarks/bench_quality.py`` is the command.
"""
