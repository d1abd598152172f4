"""Drop repeated <script> entries from each page.

sphinx-thebe registers its inline configuration (`const THEBE_JS_URL = ...`) once per
read of the environment, and Jupyter Book's build reads it twice, so every page declared
the same constants twice and the browser reported "Identifier 'THEBE_JS_URL' has already
been declared". Keeping only the first copy of each identical script fixes that.
"""


def _dedupe(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the same inline script may be registered with filename None or '' (same output)
        key = (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique


def setup(app):
    # Run after every other handler, some of which add scripts during this event.
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
