"""Package data: project templates. ``fw_plugin`` is the plugin-author template that
``fw plugin new`` renders; the files live in a package so that fw's wheel ships them."""
