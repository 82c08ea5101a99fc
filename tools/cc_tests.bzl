"""kqio_cc_tests: one cc_test per `<name>.cc` beside the BUILD file.

A package's tests usually share their dependencies and differ only in a few
attributes; listing them once keeps the rules from drifting apart.

    load("//tools:cc_tests.bzl", "kqio_cc_tests")

    kqio_cc_tests(
        deps = COMMON_DEPS,
        tests = {
            "foo_test": {},
            # What bar_test proves, as a comment on its entry.
            "bar_test": {"size": "medium", "deps": ["//x:y"]},
        },
    )

Each entry's "deps" are added to the shared `deps`; every other key is a
cc_test attribute that overrides the shared ones (`size` defaults to small).
"""

def kqio_cc_tests(tests, deps = [], size = "small", **kwargs):
    """Declares a cc_test for each entry of `tests` (name -> overrides)."""
    for name, overrides in tests.items():
        attrs = dict(kwargs)
        attrs["size"] = size
        attrs.update(overrides)
        attrs["deps"] = deps + overrides.get("deps", [])
        native.cc_test(
            name = name,
            srcs = attrs.pop("srcs", [name + ".cc"]),
            **attrs
        )
