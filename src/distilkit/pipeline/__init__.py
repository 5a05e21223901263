"""Commands that run other commands: `distilkit run RECIPE.yaml` (runner.py, options in options.py) and the
hyper-parameter `search` over finetune or distill options (search.py)."""
