"""Tasks that were measured and did not beat the classifier on this project's data.

They stay because they work, are tested and teach something (see BENCHMARKS.md,
"Ablation", and notebook 05): a hybrid cell-plus-offset head, retrieval refinement among
the training locations of the top cells, and k nearest neighbours over backbone features.
None of them adds a branch to the core tasks; each is a task of its own in
:data:`geoguess_utils.tasks.registry.TASKS`.
"""
