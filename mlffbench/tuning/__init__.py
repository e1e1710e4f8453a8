"""``mlffbench tune``: Optuna studies over a model plugin's search space.

- :mod:`mlffbench.tuning.settings` — what a study tunes (model, dataset, objectives, budget,
  fixed values), stored in the study so that any worker can join or resume it;
- :mod:`mlffbench.tuning.storage` — the study database (SQLite by default, any Optuna RDB
  URL such as PostgreSQL), heartbeats that mark killed workers' trials failed;
- :mod:`mlffbench.tuning.objective` — one trial = one :func:`mlffbench.runs.experiment.train_and_evaluate`
  run with a pruning / divergence callback, nested under the study's MLflow run;
- :mod:`mlffbench.tuning.report` — the table of best trials (or Pareto front), the best
  config as a ``mlffbench run --config`` file, and PNG plots.
"""
