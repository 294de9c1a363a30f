"""MT-bench for the BAdam reproduction: generate answers, judge them, show Table 2.

Modules, in the order a run uses them: data (FastChat's files, append-only JSONL), templates (chat
prompts), generate (answers of a local model), client (OpenAI-compatible HTTP), pool (paid requests
run concurrently), api_answer (answers of an API model), prompts (the judge's messages), judge
(judgments), scores (parsing and averages), table2 (the paper's table layout), show (tables, plot,
W&B). fake_judge is a local judge server for the tests and for dry runs. cli is the error boundary
every command runs in (one `error:` line and status 2 for bad input, --debug for the traceback).
"""
