"""Hub-shaped outputs: the model card of every model folder (cards.py renders, card_kinds.py has one function per
kind of folder, usage.py the loading code) and `distilkit push`, which uploads a model folder's model files only
(push.py)."""
