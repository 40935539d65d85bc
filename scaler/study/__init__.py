"""The study engine: exactly-once work items in an Optuna study, resumable after any kill,
shared by local worker processes and by `scaler worker` on other machines.

* `experiment`: what a kind of study must say (its items, how to run one, its table);
* `create`: creating a study, opening it again, joining it from another machine;
* `engine`: the queue, reconciling, running an item with heartbeat and pruning reports;
* `trials`: which item a trial ran and the state it stands in; `results`: the result files;
* `runner`: driving a study from this process or from local worker processes;
* `handle`: an open study; `storage`: journal file or database URL; `lock`: one process per
  study folder.
"""
