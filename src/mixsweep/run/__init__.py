"""One finetuning run: its setup (:mod:`~mixsweep.run.prepare`), its training loop
(:mod:`~mixsweep.run.train`), one optimizer step (:mod:`~mixsweep.run.step`), and what a run needs to be
reproduced (:mod:`~mixsweep.run.environment`, :mod:`~mixsweep.run.lockfile`)."""
