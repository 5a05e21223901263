"""Training on labels: `finetune` (teacher or student), its Trainer set-up, adversarial training (FGM, PGD) and
continual learning (label-map extension, Learning without Forgetting, replay)."""
