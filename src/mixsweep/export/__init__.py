"""``mixsweep export``: a study of the store, with the analysis' tables, into another tool
(MLflow: :mod:`~mixsweep.export.to_mlflow`, the command in :mod:`~mixsweep.export.cli`)."""
