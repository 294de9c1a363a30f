"""SuperGLUE with RoBERTa for the BAdam reproduction: the paper's six tasks, jiant's formulations.

Modules, in the order a run uses them: cli (the error boundary of the entry points), files (jsonl,
JSON and YAML with file:line errors, atomic writes), tasks (the six tasks, their inputs and the split
protocol), data (local SuperGLUE dir or the hub), encoding (token ids and spans from text), model
(encoder + jiant heads, collator), metrics (accuracy, F1a, EM), optim (adam, lora, block, sparse),
run_dir (whose a run directory is, where a rerun resumes), selection (best model on the selection
split), train (the entry point), aggregate (the paper's table from a results directory).
"""
