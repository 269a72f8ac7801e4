"""A run's configuration: where it lives on disk (:mod:`~mixsweep.config.paths`), the schema every
value is checked against (:mod:`~mixsweep.config.schema`) and its recipe in one line
(:mod:`~mixsweep.config.recipe`)."""
