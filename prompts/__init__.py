"""Not code: this marker lets the build ship prompts/ as the package `bot.prompts` (see setup.py)."""
