"""The study engine: exactly-once work items in an Optuna study, resumable after any kill,
shared by local worker processes and by `scaler worker` on other machines.

* `experiment`: what a kind of study must say (its items, how to run one, its table);
* `engine`: creating/joining a study, the queue, reconciling, running an item, result files;
* `runner`: driving a study from this process or from local worker processes;
* `storage`: journal file or database URL; `lock`: one process per study folder.
"""
