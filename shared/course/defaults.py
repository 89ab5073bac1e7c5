"""Defaults the commands' ``--help`` shows, kept apart from the modules that use them so that
building the parser never imports torch (``python -m shared train --help`` answers at once)."""

GIF_PROMPT = "En un lugar de la Mancha, "  # ends with ", ": the sample reads on, not glued on
GIF_NEW_CHARS = 60
RUN_PROMPT = GIF_PROMPT
RUN_NEW_CHARS = 1000

# The CPU recipe's values for `train --help`: the modern recipe, the default of `train` and `run`
# on the CPU since it beat the classic one at equal wall time (benchmarks/RESULTS.md, lesson 10;
# shared.engine.train_config.modern_train_config; tests/test_cli_run_flags.py checks they agree).
# Quick mode (GPT_COURSE_QUICK=1) uses smaller ones. The CPU recipe reads byte-level BPE tokens
# (`--tokenizer`, shared.engine.train_config.recipe_tokenizer), not a TrainConfig field.
CPU_RECIPE = {
    "time_budget": 240.0, "max_iters": 5000, "batch_size": 32, "block_size": 128, "n_layer": 4,
    "n_head": 4, "n_embd": 128, "learning_rate": 0.01, "warmup_iters": 50,
    "eval_interval": 250, "eval_iters": 20, "min_lr": 0.001, "weight_decay": 0.1,
    "grad_clip": 1.0, "dropout": 0.0, "seed": 1337, "muon_lr": 0.02,
}  # fmt: skip
RECIPES = ("modern", "classic")  # `--recipe`: modern (default on the CPU) or lessons 03-08's GPT
