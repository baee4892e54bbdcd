"""The plugin-author template (``fw plugin new NAME --kind KIND``).

``*.tmpl`` files are ``string.Template`` text: ``$package``, ``$symbol`` ... are filled
in by ``fw_builtins.commands.plugin_cmd.render``, which also says which file goes where.
``$$`` is a literal dollar sign.
"""
