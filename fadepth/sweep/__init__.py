"""Ablation sweeps: a YAML spec per paper table -> one Optuna study + one MLflow experiment.

* :mod:`fadepth.sweep.spec`      the spec format (pydantic), validation, ``load_spec``, ``SweepSpec.resolve``
* :mod:`fadepth.sweep.study`     Optuna storage, study naming, enqueueing cells, repairing stale cells
* :mod:`fadepth.sweep.tracking`  MLflow store, experiment, parent sweep run, child runs, training-curve callback
* :mod:`fadepth.sweep.worker`    the worker process: pull a WAITING trial, train / count, log, repeat
* :mod:`fadepth.sweep.plan`      the validated request: spec, profile, schemes x seeds, pre-flight (no side effects)
* :mod:`fadepth.sweep.session`   one sweep's prepared stores (``Sweep``), progress bar and summary
* :mod:`fadepth.sweep.launcher`  the ``sweeps/run.py`` command line: validate, prepare, spawn workers, wait
* :mod:`fadepth.sweep.slurm`     ``--launcher slurm``: the workers as SLURM jobs (submitit)
"""
