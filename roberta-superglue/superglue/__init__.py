"""SuperGLUE with RoBERTa for the BAdam reproduction: the paper's six tasks, read and scored by jiant.

Modules, in the order a run uses them: cli (the error boundary of the entry points), jiant_compat
(jiant 2.2.0 on transformers 5), files (jsonl, JSON and YAML with file:line errors, atomic writes),
tasks (jiant's six tasks, their readers, the split protocol), data (local SuperGLUE dir or the hub),
encoding (jiant's featurization, unpadded), model (encoder + jiant-style heads, collator), metrics
(jiant's evaluation schemes), optim (adam, lora, block, sparse), run_dir (whose a run directory is,
where a rerun resumes), selection (best model on the selection split), train (the entry point),
aggregate (the paper's table from a results directory).
"""
