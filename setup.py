"""Package layout the pyproject table cannot express: `prompts/` is built as `bot.prompts`.

People edit the system prompt and the recipe book in the top-level `prompts/`; the wheel carries
them inside the package (loaded with importlib.resources), and an editable install maps
`bot.prompts` straight to that folder. Everything else about the project is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["bot", "bot.*"]), "bot.prompts", "bot.prompts.recipes"],
    package_dir={"bot.prompts": "prompts"},
)
