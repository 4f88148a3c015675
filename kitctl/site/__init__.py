"""A sub-site's inputs: what a licensee chose (name, domain, branding, ports …).

`kitctl.site.inputs` holds the validated model, `kitctl.site.load` the
precedence (flags > KITCTL_ env > site.toml > defaults), `kitctl.site.resolve`
ties the inputs to a verified licence. Nothing here renders or deploys.
"""
