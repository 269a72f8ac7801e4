"""One finetuning run: its setup (:mod:`~mixsweep.run.prepare`), its training loop
(:mod:`~mixsweep.run.train`), one optimizer step (:mod:`~mixsweep.run.step`), its evaluator
(:mod:`~mixsweep.run.evaluate`), the record it returns (:mod:`~mixsweep.run.record`), and what a run
needs to be reproduced (:mod:`~mixsweep.run.environment`, :mod:`~mixsweep.run.lockfile`)."""
