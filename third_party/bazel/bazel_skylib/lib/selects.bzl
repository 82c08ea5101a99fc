"""The one piece of bazel-skylib that Abseil's BUILD files use."""

def _config_setting_group(name, match_any = [], match_all = [], visibility = None):
    """A setting that matches when any of `match_any` matches.

    Built as a chain of aliases: link i resolves to setting i if it matches,
    otherwise to link i+1; the last link is the last setting itself.
    """
    if match_all or not match_any:
        fail("this skylib stand-in only supports a non-empty match_any")
    links = [name] + ["%s__or_%d" % (name, i) for i in range(1, len(match_any))]
    for i, setting in enumerate(match_any):
        if i == len(match_any) - 1:
            actual = setting
        else:
            actual = select({
                setting: setting,
                "//conditions:default": ":" + links[i + 1],
            })
        native.alias(name = links[i], actual = actual, visibility = visibility)

selects = struct(config_setting_group = _config_setting_group)
