"""alpaca_sft: supervised fine-tuning on Alpaca-format data with BAdam and its baselines (arXiv 2404.02827).

python -m alpaca_sft.train --help        # the training entry point (or: python -m alpaca_sft.train run.yaml)
python -m alpaca_sft.compare --help      # several finetuning types on one task: one loss PNG + memory/time table
"""
