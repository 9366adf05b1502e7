"""Sphinx configuration of the rpccore docs (built with ``tox -e docs``)."""

project = "rpccore"
author = "the rpccore developers"
copyright = "2026, the rpccore developers"

extensions = [
    "sphinx.ext.autodoc",
    # Writes _static/rpccore.conf.sample at build time from the installed
    # plugins, so the sample config is generated, never hand-written.
    "oslo_config.sphinxconfiggen",
]
config_generator_config_file = "config-generator.conf"
sample_config_basename = "_static/rpccore"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
nitpicky = False
