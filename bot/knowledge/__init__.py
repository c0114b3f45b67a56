"""The recipe book, its search, and the verifier that checks answers against the installed Prefect.

Import from the submodules (`bot.knowledge.recipes`, `.search`, `.verifier`, `.tools`); this
package imports nothing heavy itself.
"""
