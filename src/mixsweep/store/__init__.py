"""Where runs are kept: the results store (:mod:`~mixsweep.store.runs`), run and cell ids
(:mod:`~mixsweep.store.runid`, :mod:`~mixsweep.store.cell_id`), a run's per-example outputs
(:mod:`~mixsweep.store.outputs`) and crash-safe writes (:mod:`~mixsweep.store.atomic`). The run record
itself is :mod:`mixsweep.records`."""
