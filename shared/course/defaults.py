"""Defaults the commands' ``--help`` shows, kept apart from the modules that use them so that
building the parser never imports torch (``python -m shared train --help`` answers at once)."""

GIF_PROMPT = "En un lugar de la Mancha, "  # ends with ", ": the sample reads on, not glued on
GIF_NEW_CHARS = 60
RUN_PROMPT = GIF_PROMPT
RUN_NEW_CHARS = 1000

# The CPU recipe's values for `train --help` (shared.train_config.TrainConfig's defaults;
# tests/test_cli_help.py checks they agree). Quick mode (GPT_COURSE_QUICK=1) uses smaller ones.
CPU_RECIPE = {
    "time_budget": 240.0, "max_iters": 5000, "batch_size": 32, "block_size": 64, "n_layer": 4,
    "n_head": 4, "n_embd": 128, "learning_rate": 0.003, "warmup_iters": 100,
    "eval_interval": 250, "eval_iters": 20, "min_lr": 0.0003, "weight_decay": 0.1,
    "grad_clip": 1.0, "dropout": 0.0, "seed": 1337,
}  # fmt: skip
