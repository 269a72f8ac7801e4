"""Hyperparameter search with Optuna over the ordinary runner and results store (``mixsweep hpo``).

``space`` parses and checks ``conf/hpo/*.yaml``; ``objective`` turns a trial into k restarts and a
score; ``driver`` owns the study (storage, resume, cap, stale trials, workers); ``report`` writes
the CSV, plots and the confirming sweep file; ``cli`` adds the subcommand.
"""
