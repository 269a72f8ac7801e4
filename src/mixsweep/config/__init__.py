"""A run's configuration: every setting declared once with its default (:mod:`~mixsweep.config.settings`,
the digits task's :mod:`~mixsweep.config.digits`), the schema every value is checked against
(:mod:`~mixsweep.config.schema`), the declared defaults as Hydra's first config
(:mod:`~mixsweep.config.hydra_node`), a stored config read leniently (:mod:`~mixsweep.config.stored`) and
where things live on disk (:mod:`~mixsweep.config.paths`). The one package that reads a config by key."""
